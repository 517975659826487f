"""Diagnostics: gradient alignment, latent embedding, attribute study, statistics.

- :mod:`mrseg.diagnostics.alignment`: per-rater reconstruction-gradient cosines of a trained model
  (at the shared posterior mean, at the prior mean with a common / disagreement split, at the
  decoder's parameters) and the floor of the zero-filled reading.
- posterior collapse (KL(q || p), conditional active units, d_SS / d_YY) is measured on every
  run's evaluation: :mod:`mrseg.measures.collapse`.
- :mod:`mrseg.diagnostics.latent`: posterior / prior means, t-SNE and quantitative companions.
- :mod:`mrseg.diagnostics.attributes`: rating disagreement vs inter-rater mask variance (no model).
- :mod:`mrseg.diagnostics.statistics`: sign test, paired Wilcoxon, Pearson / partial r, p adjustment.
"""
