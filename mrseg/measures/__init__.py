"""Measures computed on every run's evaluation (and validation) that are not plain segmentation
metrics: posterior use (:mod:`mrseg.measures.collapse`: KL(q || p), conditional active units,
d_SS / d_YY) and, on controlled-raters datasets, GED to the true style distribution and style
recovery (:mod:`mrseg.measures.styles`). They enter the run's tables, so they are result sources
(:data:`mrseg.bookkeeping.fingerprint.RESULT_SOURCES`)."""
