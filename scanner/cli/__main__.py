"""`python -m scanner.cli`: the same entry point as the installed `flowleaks` script."""
from scanner.cli.main import main

main()
