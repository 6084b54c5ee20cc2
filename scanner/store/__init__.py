"""The DuckDB store: schema, writes, views, lifecycle, suppressions, queries, exports."""
