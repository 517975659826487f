"""Scoring: the aggregated tables read back (:mod:`mrseg.scoring.results`), the claims and their typed
rules (:mod:`mrseg.scoring.claim_rules`), and every claim's verdict and statistics
(:mod:`mrseg.scoring.claims`, written as ``scorecard.json``). Below the pipeline, which writes the
scorecard, and the report, which only renders it."""
