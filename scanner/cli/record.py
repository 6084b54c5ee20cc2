"""`flowleaks record`: a sweep whose API interactions are saved as a scrubbed cassette (scanner/replay/
cassette.py), for bug reports and the demo."""
from __future__ import annotations

import click

from scanner.cli.options import connection_options, scope_options
from scanner.pipeline.crawl import CrawlOptions
from scanner.pipeline.sweep import run_scan
from scanner.settings import settings_from, window


@click.command()
@connection_options
@scope_options
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Cassette file to write (VCR.py-style YAML); missing folders are created.")
@click.option("--keep-secrets", is_flag=True, hidden=True,
              help="Do not scrub detected secrets (only for cassettes recorded from a fake tenant).")
@click.option("--map-origin", multiple=True, hidden=True,
              help="OLD=NEW origin rewrite applied to the cassette (fake hosts -> real host names).")
def record(**kw) -> None:
    """Record a sweep's API interactions as a scrubbed cassette, for bug reports and the demo.

    Authorization headers are never written, SAS `sig` values are replaced, and every secret the
    detectors find in a body is replaced by a marker with its redacted preview.

    \b
    Example:
      flowleaks record --env Default-<tenant> --flow <flow-id> --days 2 --out repro.yaml
    """
    import os
    import tempfile

    from detectors.engine import Engine

    from scanner.replay.cassette import FoundSecrets, RecordingTransport, leaf_scrubber

    settings = settings_from(kw)
    since, until = window(kw.pop("since"), kw.pop("until"), kw.pop("days"))
    keep = kw.pop("keep_secrets")
    # Every secret the sweep finds is remembered as keyed hashes of its encodings (never plaintext),
    # so the cassette can be scrubbed of it wherever and however it appears, however short.
    found = FoundSecrets(key=os.urandom(32))
    options = CrawlOptions(environments=kw.pop("environments"), flows=kw.pop("flows"), since=since,
                           until=until, status=kw.pop("status"), kind="record",
                           secret_sink=None if keep else (lambda secret: found.add_value(secret, "found")))
    origin_map = dict(m.split("=", 1) for m in kw.pop("map_origin"))
    recorder = RecordingTransport(origin_map=origin_map)

    with tempfile.TemporaryDirectory() as tmp:
        settings.db = f"{tmp}/record.duckdb"
        outcome = run_scan(settings, options, None, params={"record": True}, transport=lambda engine: recorder,
                           outputs={"--out": kw["out"]})
    if keep:
        cassette = recorder.cassette(None)
    else:
        engine = Engine(known=found)
        with engine.session():
            cassette = recorder.cassette(leaf_scrubber(engine))
    cassette.save(kw.pop("out"))
    click.echo(f"recorded {len(cassette.interactions)} interactions "
               f"({outcome.stats.runs_scanned} runs, complete={outcome.complete})", err=True)
