"""Run bookkeeping below training and data: a run's manifest, its fingerprint (what makes a
finished run stale), the per-run lock, the recorded sizes and hashes of its tables, and the
machine's facts. ``train`` and ``data`` use these; nothing here imports above them."""
