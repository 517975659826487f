"""mrseg: a workbench for multi-rater medical image segmentation.

Replicates and extends "per-rater posterior encoders for diversified multi-rater segmentation"
(a Probabilistic U-Net family). See the book for results and the README for set-up.
"""

import warnings

__version__ = "0.1.0"

# Libraries that mrseg imports (MONAI, transformers) pull in ``tqdm.auto``, which warns inside a
# notebook kernel that Jupyter widgets are missing. mrseg uses plain-text tqdm on purpose (the book
# is static HTML), so that warning would only add noise to every executed page.
warnings.filterwarnings("ignore", message="IProgress not found")
