"""`python -m scanner.replay CASSETTE`: serve a cassette over loopback HTTP (scanner/replay/server.py)."""
from scanner.replay.server import main

main()
