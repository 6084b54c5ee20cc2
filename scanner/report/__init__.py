"""What a person reads: progress, summaries, SARIF, exports."""
