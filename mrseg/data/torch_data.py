"""Tensors for training and evaluation from a :class:`~mrseg.data.cache.CachedDataset`.

One fold split (train / val / test, patient-grouped) is loaded into memory as float tensors
resized from the cached size to ``config.image_size``: images with area interpolation, masks with
area interpolation thresholded at 0.5 (so a rater's mask stays binary). ``max_train_cases`` and
``max_eval_cases`` subsample the splits (seeded by ``config.seed`` and the fold). Sparsity: each
step :func:`draw_present` keeps ``n_present`` of each image's available raters at random.

Paired randomness: :func:`step_generator` seeds a generator from ``(seed, fold, epoch, step)``
alone, separate from the model's sampling RNG, and :func:`draw_step` draws everything about the
raters of one step from it in a fixed order (present raters, then the rater indices), so a shared
and a per-rater run of the same fold see identical draws. ``missing: static`` fixes each training
image's subset once (:func:`static_present`, seeded by ``(seed, fold)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

SPLITS = ("train", "val", "test")


@dataclass
class SplitTensors:
    """``image [P, C, H, W]`` float32 in [0, 1], ``masks [P, N, H, W]`` float32 {0, 1},
    ``present [P, N]`` bool, ``index [P]`` dataset row numbers, ``cases`` their id table."""

    image: torch.Tensor
    masks: torch.Tensor
    present: torch.Tensor
    index: np.ndarray
    cases: pd.DataFrame

    def __len__(self) -> int:
        return int(self.image.shape[0])

    def to(self, device: torch.device | str, pin: bool = False) -> "SplitTensors":
        tensors = [self.image, self.masks, self.present]
        if pin and torch.cuda.is_available():
            tensors = [t.pin_memory() for t in tensors]
        image, masks, present = (t.to(device, non_blocking=pin) for t in tensors)
        return SplitTensors(image, masks, present, self.index, self.cases)


def resize_images(images: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """``[P, C, H, W]`` -> float32 ``[P, C, size, size]`` (area interpolation when shrinking)."""
    t = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    if t.shape[-1] == size and t.shape[-2] == size:
        return t.contiguous()
    mode = "area" if size < t.shape[-1] else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(t, size=(size, size), mode=mode, **kwargs).clamp(0, 1)


def resize_masks(masks: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """``[P, N, H, W]`` {0, 1} -> float32 ``[P, N, size, size]``: area-resize, then ``>= 0.5``."""
    t = resize_images(torch.as_tensor(np.asarray(masks), dtype=torch.float32), size)
    return (t >= 0.5).float()


def split_indices(ds: Any, config: Any) -> dict[str, np.ndarray]:
    """Dataset row numbers of the train / val / test split of ``config.fold``, subsampled.

    ``select_on == "test"`` makes the validation set the test set (the thesis's practice).
    """
    n_folds = int(ds.cases["fold"].max()) + 1
    if not 0 <= config.fold < n_folds:
        raise ValueError(f"fold {config.fold} does not exist in dataset {ds.name!r} ({n_folds} folds)")
    train, val, test = (np.asarray(a) for a in ds.split(config.fold, config.val_fraction, config.seed))
    rng = np.random.default_rng([config.seed, config.fold, 17])

    def cap(idx: np.ndarray, limit: int) -> np.ndarray:
        if limit and len(idx) > limit:
            idx = np.sort(rng.choice(idx, size=limit, replace=False))
        return idx

    if (getattr(config, "dataset_options", None) or {}).get("include_partial"):
        # real partial annotation: train on every case, evaluate on the four-rater (complete) cases
        complete = np.asarray(ds.present).all(axis=1)
        test, val = test[complete[test]], val[complete[val]]
    train = cap(train, config.max_train_cases)
    test = cap(test, config.max_eval_cases)
    val = cap(val, config.max_val_cases or config.max_eval_cases)
    if config.select_on == "test":
        val = test
    return {"train": train, "val": val, "test": test}


def load_split(ds: Any, index: np.ndarray, size: int) -> SplitTensors:
    """The cases ``index`` of ``ds`` as tensors at ``size`` x ``size``."""
    index = np.asarray(index, dtype=np.int64)
    order = np.argsort(index)
    rows = index[order]
    image = resize_images(np.asarray(ds.images[rows]), size)
    masks = resize_masks(np.asarray(ds.masks[rows]), size)
    present = torch.as_tensor(np.asarray(ds.present[rows]), dtype=torch.bool)
    inverse = torch.as_tensor(np.argsort(order))
    cols = [c for c in ("case_id", "patient_id", "nodule_id") if c in ds.cases.columns]
    cases = ds.cases.iloc[index][cols].reset_index(drop=True)
    return SplitTensors(image[inverse], masks[inverse], present[inverse], index, cases)


def load_splits(ds: Any, config: Any) -> dict[str, SplitTensors]:
    """``{"train", "val", "test"}`` tensors for ``config`` (val may be empty)."""
    idx = split_indices(ds, config)
    return {name: load_split(ds, idx[name], config.image_size) for name in SPLITS}


def draw_present(present: torch.Tensor, n_present: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Keep ``n_present`` of each row's available raters at random: bool ``[B, N]``.

    Rows with fewer available raters keep all of them.
    """
    if n_present >= present.shape[1]:
        return present.clone()
    scores = torch.rand(present.shape, generator=generator, device=present.device)
    scores = torch.where(present, scores, torch.full_like(scores, -1.0))
    rank = scores.argsort(dim=1, descending=True).argsort(dim=1)
    return present & (rank < n_present)


def disagreement(masks: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean pairwise (1 - IoU) between present raters per case ``[P]`` (empty pairs: 0)."""
    flat = masks.flatten(2)
    inter = flat @ flat.transpose(1, 2)
    area = flat.sum(-1)
    union = area[:, :, None] + area[:, None, :] - inter
    d = torch.where(union > 0, 1 - inter / union.clamp(min=1e-8), torch.zeros_like(union))
    pair = present[:, :, None] & present[:, None, :]
    n = pair.sum((1, 2)) - present.sum(1)
    return (d * pair).sum((1, 2)) / n.clamp(min=1)


def step_generator(seed: int, fold: int, epoch: int, step: int, device: torch.device | str = "cpu"
                   ) -> torch.Generator:
    """A generator seeded by ``(seed, fold, epoch, step)`` only (independent of the model's RNG)."""
    state = int(np.random.SeedSequence([int(seed), int(fold), int(epoch), int(step), 0x5EED]).generate_state(1)[0])
    return torch.Generator(device=device).manual_seed(state)


def static_present(present: torch.Tensor, n_present: int, seed: int, fold: int) -> torch.Tensor:
    """``missing: static``: one fixed random subset of ``n_present`` raters per image ``[P, N]``."""
    gen = torch.Generator(device=present.device).manual_seed(
        int(np.random.SeedSequence([int(seed), int(fold), 0x57A7]).generate_state(1)[0]))
    return draw_present(present, n_present, gen)


def draw_rater_index(present: torch.Tensor, per_image: bool, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
    """The rater each image reconstructs under ``objective: dpersona-code``: long ``[B]``.

    ``per_image=False`` (shared): one index drawn uniformly from all N slots, the same for every
    image of the batch (D-Persona's ``np.random.randint(0, mask_num)``), whether or not that rater
    is present. ``per_image=True`` (shared-masked): for each image a rater drawn uniformly from its
    present raters (an image without any keeps index 0).
    """
    b, n = present.shape
    scores = torch.rand((b, n), generator=generator, device=present.device)
    if not per_image:
        return torch.full((b,), int(scores[0, 0] * n) % n, dtype=torch.long, device=present.device)
    scores = torch.where(present, scores, torch.full_like(scores, -1.0))
    return scores.argmax(1)


def draw_step(available: torch.Tensor, n_present: int, generator: torch.Generator, static: bool = False
              ) -> dict[str, torch.Tensor]:
    """Every rater draw of one training step from ``generator``, in a fixed order.

    ``available [B, N]``: the raters each image has (or, with ``static``, its fixed subset).
    Returns ``present [B, N]``, ``rater_batch [B]`` (one index for the batch) and ``rater_image
    [B]`` (a present rater per image). All three are always drawn, so the draws do not depend on
    which model consumes them.
    """
    present = available.clone() if static else draw_present(available, n_present, generator)
    if static:   # keep the generator's stream aligned with the per-step case
        torch.rand(available.shape, generator=generator, device=available.device)
    return {"present": present, "rater_batch": draw_rater_index(present, False, generator),
            "rater_image": draw_rater_index(present, True, generator)}
