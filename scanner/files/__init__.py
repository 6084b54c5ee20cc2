"""`flowleaks scan-files`: exported run history, definitions and other payloads, scanned offline.

    sources.py  the paths given → the files to scan (directories recursively), as the user named them
    read.py     one file → its documents (a JSON file, each JSONL line, text, bytes; gzip; size caps)
    shapes.py   one document → the bodies in it, attributed (environment, flow, run, action, side)
    worker.py   one file → redacted results, in a process pool (nothing but previews and keyed
                fingerprints leaves a worker)
    scan.py     the run: the one writer of the store, the outcome; progress goes to what the command
                passes in

What a person and a scheduler see of it (progress bar, summary, --summary-json) is files_summary.py
in the report package; the command (options, exit status) is scanner/cli/scan_files.py. Nothing here
imports the report package: it renders these outcomes, not the other way round.
"""
