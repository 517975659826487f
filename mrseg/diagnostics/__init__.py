"""Diagnostics: gradient alignment, latent embedding, attribute study, statistics.

- :mod:`mrseg.diagnostics.alignment`: per-rater reconstruction-gradient cosines of a trained model.
- :mod:`mrseg.diagnostics.latent`: posterior / prior means, t-SNE and quantitative companions.
- :mod:`mrseg.diagnostics.attributes`: rating disagreement vs inter-rater mask variance (no model).
- :mod:`mrseg.diagnostics.statistics`: sign test, paired Wilcoxon, Pearson / partial r, p adjustment.
"""
