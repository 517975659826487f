"""Benchmarks that print numbers (``python -m mrseg bench``): ``metrics`` (vectorised metrics vs a
per-pair loop) and ``step`` (training-step time, shared vs per-rater, optimised vs naive)."""
