"""The pipeline: plan -> runs -> tables. Nothing here computes a model or a metric.

``plan`` expands a plan YAML into items; ``runner`` executes them (``executors``: local processes
or Dask) as papermill notebooks, ``lock`` keeps concurrent invocations from training a run twice;
``manifest``, ``fingerprint`` and ``status`` say what a run is, which code made it and whether it
is complete or stale; ``aggregate`` turns finished runs into the results tables and the scorecard;
``record`` writes the measurements beside them; ``reference`` exports and reads committed
reference results; ``notebook_hygiene`` scrubs executed notebooks.
"""
