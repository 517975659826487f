"""mrseg: a workbench for multi-rater medical image segmentation.

Replicates and extends "per-rater posterior encoders for diversified multi-rater segmentation"
(a Probabilistic U-Net family). See the book for results and the README for set-up.
"""

__version__ = "0.1.0"
