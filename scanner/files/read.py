"""One file → its documents: the whole file as JSON, each line of JSON Lines, or text/bytes.

- A zip archive (a solution export) is not opened: it is recorded as `archive` (blocking).
- gzip is recognised by its magic bytes (`.json.gz`, `.jsonl.gz`, or a misnamed one); the name
  without `.gz` decides the format. The size cap applies to the decompressed bytes, so a gzip bomb
  stops at the cap.
- JSON Lines: `.jsonl`, `.ndjson`, `.jsonlines`, or a file whose whole text is not JSON but whose
  first line is a JSON object or array. Read line by line (a large export never sits in memory
  whole); the cap applies to each line. A line's document is `$[line N]` (1-based).
- Exports made by PowerShell carry a BOM or are UTF-16; `json.detect_encoding` reads those.
- What is not JSON is scanned as text (bytes that are not text, as bytes: the engine records them
  as `binary` or `invalid utf-8`). A `.json` file or a JSON Lines line that does not parse is also
  on record as `not json` (its text *was* scanned, so that reason does not make a scan incomplete).

Nothing here raises on content; problems are yielded as `Problem`s, whose details quote the
parser's message and a position, never the file's text.
"""
from __future__ import annotations

import codecs
import gzip
import json
import zlib
from dataclasses import dataclass
from typing import IO, Any, Iterator

from scanner.posture.lint import why_unreadable as why_not_json  # the parser's message + position, never the text

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonlines")
UNREADABLE, TOO_LARGE, NOT_JSON, ARCHIVE = "unreadable", "too large", "not json", "archive"
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)  # (UTF-32 LE starts like UTF-16 LE)
_DRAIN = 1 << 20


@dataclass(frozen=True, slots=True)
class Document:
    prefix: str      # '$' (the whole file) or '$[line 12]'
    value: Any       # parsed JSON, text, or bytes
    is_json: bool
    size: int        # bytes it took in the (decompressed) file


@dataclass(frozen=True, slots=True)
class Problem:
    prefix: str | None  # where in the file, None for the file as a whole
    reason: str
    detail: str


def read(path: str, name: str, max_bytes: int) -> Iterator[Document | Problem]:
    gz = False
    try:
        with open(path, "rb") as raw:
            if raw.peek(4)[:4] == ZIP_MAGIC:  # a solution or flow package: its members are not read here
                yield Problem(None, ARCHIVE, "a zip archive: unzip it and scan the folder "
                                             "(`flowleaks lint` reads solution zips for posture)")
                return
            gz = raw.peek(2)[:2] == GZIP_MAGIC
            stream: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
            stem = name.lower().removesuffix(".gz")
            if stem.endswith(JSONL_SUFFIXES) and not stream.peek(4)[:4].startswith(_UTF16_BOMS):
                yield from _stream_lines(stream, max_bytes)
            else:
                yield from _whole(stream, stem, max_bytes)
    except (OSError, EOFError, zlib.error) as exc:
        yield Problem(None, UNREADABLE, _why_unreadable(exc, gz))


def _why_unreadable(exc: BaseException, gz: bool) -> str:
    """errno text or a fixed phrase: a gzip error's message can quote the file's first bytes."""
    if isinstance(exc, gzip.BadGzipFile):
        return "not gzip data"
    if isinstance(exc, EOFError):
        return "truncated gzip data"
    if isinstance(exc, zlib.error):
        return "corrupt gzip data"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{'gzip: ' if gz else ''}{type(exc).__name__}"


def parse(data: bytes | str) -> tuple[Any, str | None]:
    """(JSON value, None), or (text or bytes, why it is not JSON)."""
    if isinstance(data, bytes):
        encoding = json.detect_encoding(data)
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            return data, "not UTF-8 text"
    else:
        encoding, text = "utf-8", data
    try:
        return json.loads(text), None
    except RecursionError:
        return text, "nested beyond the JSON parser"
    except ValueError as exc:
        if encoding not in ("utf-8", "utf-8-sig"):
            # a guess from null bytes (UTF-16/32 without BOM) that did not give JSON: let the engine
            # judge the raw bytes rather than scan a garbled decoding
            return data, why_not_json(exc)
        return text, why_not_json(exc)


def _whole(stream: IO[bytes], stem: str, max_bytes: int) -> Iterator[Document | Problem]:
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        yield Problem(None, TOO_LARGE, f"over the {_mb(max_bytes)} cap (--max-mb)")
        return
    if not data.strip():
        return  # an empty file holds nothing to scan
    value, why = parse(data)
    if why is None:
        yield Document("$", value, True, len(data))
        return
    if isinstance(value, str) and (stem.endswith(JSONL_SUFFIXES) or _looks_like_lines(value)):
        for n, line in enumerate(value.splitlines(), 1):
            yield from _line(n, line)
        return
    if stem.endswith(".json") and not isinstance(value, bytes):
        yield Problem("$", NOT_JSON, f"{why}; scanned as text")
    yield Document("$", value, False, len(data))


def _looks_like_lines(text: str) -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return False
    value, why = parse(lines[0])
    return why is None and isinstance(value, (dict, list))


def _stream_lines(stream: IO[bytes], max_bytes: int) -> Iterator[Document | Problem]:
    n = 0
    while True:
        line = stream.readline(max_bytes + 1)
        if not line:
            return
        n += 1
        if len(line) > max_bytes:
            while line and not line.endswith(b"\n"):  # the rest of the line, without keeping it
                line = stream.readline(_DRAIN)
            yield Problem(f"$[line {n}]", TOO_LARGE, f"line {n} over the {_mb(max_bytes)} cap (--max-mb)")
            continue
        yield from _line(n, line.removeprefix(codecs.BOM_UTF8) if n == 1 else line)


def _line(n: int, raw: bytes | str) -> Iterator[Document | Problem]:
    if not raw.strip():
        return
    prefix = f"$[line {n}]"
    value, why = parse(raw)
    if why is not None and not isinstance(value, bytes):
        yield Problem(prefix, NOT_JSON, f"line {n}: {why}; scanned as text")
    yield Document(prefix, value, why is None, len(raw))


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:g} MB"
