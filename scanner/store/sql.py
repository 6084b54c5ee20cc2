"""SQL text: literals and identifiers quoted for statements that cannot bind parameters (COPY's file,
ATTACH's path, a table or schema name), and DuckDB's error text as one line."""
from __future__ import annotations


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def one_line(text: object, limit: int = 600) -> str:
    return " ".join(str(text).split())[:limit]
