"""The multi-rater sample contract shared by every dataset, loader and model.

A sample is a plain dict:

- ``image``: float32 ``[C, H, W]`` in ``[0, 1]``
- ``masks``: uint8 ``[N, H, W]`` in ``{0, 1}``; an absent rater's mask is all zeros
- ``present``: bool ``[N]``; which raters annotated this image
- ``attributes`` (optional): float32 ``[N, 9]`` in :data:`LIDC_ATTRIBUTES` order, NaN if absent
- ``case_id`` (str), ``patient_id`` (str), ``nodule_id`` (str), ``slice_index`` (int)
"""

from __future__ import annotations

from typing import Any

import numpy as np

LIDC_ATTRIBUTES: tuple[str, ...] = (
    "subtlety",
    "internalStructure",
    "calcification",
    "sphericity",
    "margin",
    "lobulation",
    "spiculation",
    "texture",
    "malignancy",
)

ID_FIELDS: tuple[str, ...] = ("case_id", "patient_id", "nodule_id", "slice_index")


class DataContractError(ValueError):
    """A sample or a file violates the data contract; the message names the source and problem."""


def validate_sample(sample: dict[str, Any], source: str = "sample") -> dict[str, Any]:
    """Check ``sample`` against the contract and return it; raise :class:`DataContractError`.

    ``source`` names the file or case in the error message.
    """
    for key in ("image", "masks", "present"):
        if key not in sample:
            raise DataContractError(f"{source}: missing field {key!r}")
    image, masks, present = sample["image"], sample["masks"], sample["present"]
    if image.ndim != 3 or image.dtype != np.float32:
        raise DataContractError(f"{source}: image must be float32 [C,H,W], got {image.dtype} {image.shape}")
    if not np.isfinite(image).all() or image.min() < 0 or image.max() > 1:
        raise DataContractError(f"{source}: image values must be finite and in [0, 1]")
    if masks.ndim != 3 or masks.dtype != np.uint8 or masks.shape[1:] != image.shape[1:]:
        raise DataContractError(
            f"{source}: masks must be uint8 [N,H,W] matching the image size, got {masks.dtype} {masks.shape}"
        )
    if masks.size and masks.max() > 1:
        raise DataContractError(f"{source}: masks must be binary (0/1)")
    if present.shape != (masks.shape[0],) or present.dtype != np.bool_:
        raise DataContractError(f"{source}: present must be bool [N={masks.shape[0]}], got {present.dtype} {present.shape}")
    if (masks[~present] != 0).any():
        raise DataContractError(f"{source}: an absent rater has a non-empty mask")
    attributes = sample.get("attributes")
    if attributes is not None and attributes.shape != (masks.shape[0], len(LIDC_ATTRIBUTES)):
        raise DataContractError(f"{source}: attributes must be [N, 9], got {attributes.shape}")
    return sample


def sort_masks_by_area(masks: np.ndarray, present: np.ndarray, attributes: np.ndarray | None = None):
    """D-Persona's convention: order raters by mask area (ascending), absent raters last.

    Returns ``(masks, present, attributes)`` reordered with one stable permutation.
    """
    areas = masks.reshape(masks.shape[0], -1).sum(axis=1).astype(np.int64)
    key = np.where(present, areas, np.iinfo(np.int64).max)
    order = np.argsort(key, kind="stable")
    return masks[order], present[order], None if attributes is None else attributes[order]
