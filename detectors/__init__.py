"""flowleaks detectors: pure functions over payloads. They import nothing of HTTP or the store."""
