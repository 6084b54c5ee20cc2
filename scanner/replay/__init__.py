"""Cassettes: record, replay, the demo."""
