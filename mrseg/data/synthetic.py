"""The ``synthetic`` dataset: procedural nodule-like images with any number of raters.

Fully synthetic (not derived from any scan), deterministic by ``seed``. Each nodule has a latent
shape: a centre, a radius, a smooth irregular outline (low harmonics scaled by an
``irregularity`` in [0, 1]) and a ground-glass halo of relative width ``halo``. A case is one
slice through a nodule (the in-plane radius shrinks towards the poles, so some slices are tiny).
The image is drawn from the latent shape, not from the raters' outlines (:func:`latent_image`): the
shape elastically deformed and cut at a random level with a soft, blurred edge, internal texture,
a faint halo of its own extent, on a textured background with vessels and noise; so the image
reveals the raters' per-pixel agreement no more than real CT does (the leak check of
:mod:`mrseg.data.calibration`). Each rater draws a mask from the latent shape through a *style*:

- ``tight``: a threshold inside the core outline,
- ``wide``: the core outline dilated by about two pixels,
- ``lobulated``: the core outline with a high-frequency boundary perturbation,
- ``ground-glass-inclusive``: the outline of core plus halo, as the rater reads the halo's
  extent (the latent extent times a random factor in :data:`GLASS_READING`).

Each rater also has a small per-case threshold jitter, so two raters of one style differ, and
may leave a slice unmarked (an empty mask; 30% per rater on slices under 3 px radius, else 3%),
as LIDC readers do; at least one rater marks every slice.
Attributes (optional) are plausible LIDC ratings (``LIDC_ATTRIBUTES`` order) that depend on the
nodule (size, irregularity, halo) and on the rater's style, with offsets that grow with the
shape properties that also drive mask disagreement, so rating spread correlates with mask
variance.

``make_synthetic_samples(**options)`` returns contract samples without touching the cache;
``load_dataset("synthetic", **options)`` caches them.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy import ndimage
from scipy.special import expit
from tqdm import tqdm

from mrseg.data.contract import LIDC_ATTRIBUTES, validate_sample
from mrseg.data.registry import BuiltDataset, register_dataset

RATER_STYLES: tuple[str, ...] = ("tight", "wide", "lobulated", "ground-glass-inclusive")

# The image's view of the latent shape (:func:`latent_image`): log-radial deformation SD, cut level
# and edge width (in units of the outline's normalised distance), texture SD (relative), halo extent
# factor, blur and noise (pixels, intensity).
IMAGE_DEFORM = 0.35
IMAGE_CUT = (1.0, 1.4)
IMAGE_EDGE = (0.15, 0.3)
IMAGE_TEXTURE = 0.3
IMAGE_HALO_SCALE = (0.5, 1.5)
IMAGE_BLUR = 0.8
IMAGE_NOISE = 0.07
# a ground-glass-inclusive rater's reading of the halo's extent, relative to the latent halo
GLASS_READING = (0.6, 1.4)

# LIDC rating ranges (inclusive) per attribute, in LIDC_ATTRIBUTES order.
_ATTRIBUTE_RANGES: tuple[tuple[int, int], ...] = ((1, 5), (1, 4), (1, 6), (1, 5), (1, 5), (1, 5), (1, 5), (1, 5), (1, 5))


def _resolve_options(
    n_cases: int,
    n_patients: int | None,
    n_raters: int,
    image_size: int,
    rater_styles: Sequence[str] | None,
    missing_rate: float,
) -> tuple[int, list[str]]:
    if n_cases < 1:
        raise ValueError(f"synthetic: n_cases must be >= 1, got {n_cases}")
    if n_raters < 1:
        raise ValueError(f"synthetic: n_raters must be >= 1, got {n_raters}")
    if image_size < 16:
        raise ValueError(f"synthetic: image_size must be >= 16, got {image_size}")
    if not 0.0 <= missing_rate < 1.0:
        raise ValueError(f"synthetic: missing_rate must be in [0, 1), got {missing_rate}")
    if n_patients is None:
        n_patients = max(min(4, n_cases), n_cases // 3)
    if not 1 <= n_patients <= n_cases:
        raise ValueError(f"synthetic: n_patients must be in 1..n_cases={n_cases}, got {n_patients}")
    styles = list(rater_styles) if rater_styles else [RATER_STYLES[i % len(RATER_STYLES)] for i in range(n_raters)]
    unknown = sorted(set(styles) - set(RATER_STYLES))
    if unknown:
        raise ValueError(f"synthetic: unknown rater styles {unknown}; choose from {list(RATER_STYLES)}")
    if len(styles) != n_raters:
        # a shorter list cycles; a longer one is an error
        if len(styles) > n_raters:
            raise ValueError(f"synthetic: {len(styles)} rater_styles for n_raters={n_raters}")
        styles = [styles[i % len(styles)] for i in range(n_raters)]
    return n_patients, styles


def _nodule_layout(n_cases: int, n_patients: int, seed: int) -> list[tuple[int, int, int, int]]:
    """Per case ``(patient, nodule_global, slice_pos, slices_of_nodule)``.

    Cases are split into contiguous blocks per patient; a patient with at least two cases has
    a second nodule with probability 0.3.
    """
    rng = np.random.default_rng([seed, 7])
    patient_of_case = (np.arange(n_cases) * n_patients) // n_cases
    layout: list[tuple[int, int, int, int]] = []
    nodule_counter = 0
    for p in range(n_patients):
        k = int((patient_of_case == p).sum())
        n_nod = 2 if k >= 2 and rng.random() < 0.3 else 1
        sizes = [k // n_nod + (1 if j < k % n_nod else 0) for j in range(n_nod)]
        for j, size in enumerate(sizes):
            for s in range(size):
                layout.append((p, nodule_counter, s, size))
            nodule_counter += 1
    return layout


def _nodule_params(seed: int, nodule: int, size: int) -> dict[str, Any]:
    rng = np.random.default_rng([seed, 11, nodule])
    return {
        "radius": rng.uniform(0.06, 0.2) * size,          # in-plane radius at the equator (px)
        "irregularity": rng.beta(1.5, 2.5),                # 0 round .. 1 very irregular
        "halo": rng.uniform(0.15, 0.9),                    # ground-glass width relative to radius
        "harmonics": rng.normal(0.0, 1.0, size=(3, 2)),    # low-order outline perturbation (k=2..4)
        "core_intensity": rng.uniform(0.65, 0.9),
        "halo_intensity": rng.uniform(0.08, 0.2),
        "z0": int(rng.integers(20, 300)),
    }


def _smooth_field(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """A Gaussian random field of unit SD smoothed with ``sigma`` pixels."""
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma)
    return field / (field.std() + 1e-12)


def latent_image(rho_core: np.ndarray, rho_halo: np.ndarray, halo: float, radius: float, background: np.ndarray,
                 core_intensity: float, halo_intensity: float, rng: np.random.Generator) -> np.ndarray:
    """Image ``[1,S,S]`` float32 in [0, 1] of a latent shape (never of rater masks).

    ``rho_core`` / ``rho_halo`` ``[S,S]`` are normalised distances (1 on the outline the raters
    follow). The image does not redraw that outline: its lesion is the latent shape elastically
    deformed (a smooth log-radial field of SD :data:`IMAGE_DEFORM`), cut at a random level in
    :data:`IMAGE_CUT` with a soft edge of random width in :data:`IMAGE_EDGE`, with internal
    texture (:data:`IMAGE_TEXTURE`), a faint halo whose extent is ``halo`` times a random factor
    in :data:`IMAGE_HALO_SCALE` (not the extent a ground-glass rater marks), blur and noise. So
    the raters' disagreement region is not drawn distinctively: the rank correlation of
    intensity with the number of raters marking a pixel stays at the level of real CT
    (:func:`mrseg.data.calibration.leak_comparison`).
    """
    shape = rho_core.shape
    warp = np.exp(IMAGE_DEFORM * _smooth_field(shape, max(radius / 2.0, 1.0), rng))
    cut = rng.uniform(*IMAGE_CUT)
    edge = rng.uniform(*IMAGE_EDGE)
    core = expit((cut - rho_core * warp) / edge)
    glass = expit((cut + halo * rng.uniform(*IMAGE_HALO_SCALE) - rho_halo * warp) / 0.2)
    texture = 1.0 + IMAGE_TEXTURE * _smooth_field(shape, 1.0, rng)
    image = background * (1 - core) + core_intensity * texture * core + halo_intensity * glass * (1 - core)
    image = ndimage.gaussian_filter(image, IMAGE_BLUR) + rng.normal(0.0, IMAGE_NOISE, size=shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32)[None]


def _render_case(params: dict[str, Any], slice_pos: int, n_slices: int, size: int,
                 styles: list[str], missing_rate: float, with_attributes: bool,
                 rng: np.random.Generator) -> dict[str, Any]:
    # the slice's distance from the nodule equator, in units of the radius
    t = 0.0 if n_slices == 1 else (slice_pos - (n_slices - 1) / 2) / ((n_slices - 1) / 2) * 0.75
    t += rng.normal(0.0, 0.1)
    radius = max(params["radius"] * np.sqrt(1.0 - min(t * t, 0.95)), 0.6)
    centre = size / 2 + rng.normal(0.0, size * 0.04, size=2)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    dy, dx = yy - centre[0], xx - centre[1]
    dist = np.hypot(dy, dx)
    theta = np.arctan2(dy, dx)
    irr = params["irregularity"]
    wobble = sum(0.12 * irr * (a * np.cos(k * theta) + b * np.sin(k * theta))
                 for k, (a, b) in zip((2, 3, 4), params["harmonics"]))
    rho = dist / (radius * np.clip(1.0 + wobble, 0.5, 1.6))   # 1 on the core outline
    halo = params["halo"]

    # image: textured background, a few vessels, the soft blob, noise
    background = 0.18 + 0.07 * ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma=size / 16) * (size / 16)
    for _ in range(int(rng.integers(1, 4))):
        angle, offset = rng.uniform(0, np.pi), rng.normal(0, size / 4)
        line = np.abs(np.cos(angle) * (yy - size / 2) - np.sin(angle) * (xx - size / 2) - offset)
        background += rng.uniform(0.1, 0.25) * np.exp(-0.5 * (line / rng.uniform(0.8, 1.8)) ** 2)
    image = latent_image(rho, rho, halo, radius, background, params["core_intensity"], params["halo_intensity"], rng)

    n = len(styles)
    masks = np.zeros((n, size, size), dtype=np.uint8)
    present = rng.random(n) >= missing_rate
    if not present.any():
        present[int(rng.integers(n))] = True
    fallback: tuple[int, np.ndarray] = (0, np.zeros((size, size), dtype=bool))
    for i, style in enumerate(styles):
        jitter = rng.normal(0.0, 0.05)
        if style == "tight":
            m = rho <= 0.85 + jitter
        elif style == "wide":
            m = ndimage.binary_dilation(rho <= 1.0 + jitter, iterations=2)
        elif style == "lobulated":
            k, phase = int(rng.integers(5, 9)), rng.uniform(0, 2 * np.pi)
            m = rho <= 1.0 + jitter + (0.1 + 0.25 * irr) * np.cos(k * theta + phase)
        else:  # ground-glass-inclusive: the rater's own reading of the halo's extent
            m = rho <= 1.0 + halo * rng.uniform(*GLASS_READING) + jitter
        # a rater may not mark the nodule on this slice (often when it is small): an empty mask
        missed = rng.random() < (0.3 if radius < 3.0 else 0.03)
        if present[i] and not missed:
            masks[i] = m
        elif present[i]:
            fallback = (i, m)
    if present.any() and not masks.any():  # at least one rater marks the slice
        masks[fallback[0]] = fallback[1]
    sample: dict[str, Any] = {"image": image, "masks": masks, "present": present}
    if with_attributes:
        sample["attributes"] = _ratings(params, radius, styles, present, rng)
    return sample


def _ratings(params: dict[str, Any], radius: float, styles: list[str], present: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
    """Plausible LIDC ratings [N, 9]; NaN for absent raters."""
    irr, halo = params["irregularity"], params["halo"]
    size_score = np.clip(radius / 8.0, 0.0, 1.5)
    base = np.array([
        2.0 + 2.0 * size_score,          # subtlety: larger is more obvious
        1.0,                             # internalStructure: soft tissue
        6.0,                             # calcification: absent
        4.6 - 2.5 * irr,                 # sphericity
        4.6 - 2.0 * irr - 1.5 * halo,    # margin: sharp .. poorly defined
        1.2 + 3.0 * irr,                 # lobulation
        1.1 + 2.0 * irr,                 # spiculation
        5.0 - 2.5 * halo,                # texture: solid .. ground glass
        1.5 + 1.2 * size_score + 1.2 * irr,  # malignancy
    ])
    # style offsets scale with what makes raters disagree on the mask (halo, irregularity)
    offsets = {
        "tight": np.array([0, 0, 0, 0.5 * irr, 1.5 * halo, -1.0 * irr, -0.5 * irr, 1.2 * halo, 0]),
        "wide": np.array([0.3, 0, 0, 0, 0.5 * halo, 0, 0, 0.3 * halo, 0.3 * irr]),
        "lobulated": np.array([0, 0, 0, -1.2 * irr, -0.6 * irr, 1.5 * irr, 1.2 * irr, 0, 0.5 * irr]),
        "ground-glass-inclusive": np.array([-0.3, 0, 0, 0, -1.5 * halo, 0, 0, -1.5 * halo, 0.3 * halo]),
    }
    # a bigger disagreement region is a bigger disagreement in words, too
    offsets = {k: v * (0.5 + size_score) for k, v in offsets.items()}
    out = np.full((len(styles), len(LIDC_ATTRIBUTES)), np.nan, dtype=np.float32)
    low = np.array([r[0] for r in _ATTRIBUTE_RANGES], dtype=float)
    high = np.array([r[1] for r in _ATTRIBUTE_RANGES], dtype=float)
    for i, style in enumerate(styles):
        noise = rng.normal(0.0, 0.45, size=len(LIDC_ATTRIBUTES))
        noise[[1, 2]] = 0.0
        value = np.clip(np.rint(base + offsets[style] + noise), low, high)
        if rng.random() < 0.05:  # an occasional calcification call
            value[2] = 3.0
        if present[i]:
            out[i] = value
    return out


def make_synthetic_samples(
    n_cases: int = 240,
    n_patients: int | None = None,
    n_raters: int = 4,
    image_size: int = 64,
    seed: int = 1337,
    rater_styles: Sequence[str] | None = None,
    missing_rate: float = 0.0,
    with_attributes: bool = True,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Contract samples (``image [1,S,S]``, ``masks [N,S,S]``, ``present [N]``, ``attributes [N,9]``).

    ``n_patients`` defaults to ``max(min(4, n_cases), n_cases // 3)`` (several cases each);
    ``rater_styles`` defaults to cycling through :data:`RATER_STYLES` (a shorter list cycles);
    ``missing_rate`` is the probability that a rater is absent for a case (never all absent).
    Deterministic for fixed options; case ``i`` depends only on ``seed`` and its nodule.
    """
    n_patients, styles = _resolve_options(n_cases, n_patients, n_raters, image_size, rater_styles, missing_rate)
    layout = _nodule_layout(n_cases, n_patients, seed)
    samples = []
    params_cache: dict[int, dict[str, Any]] = {}
    for i, (patient, nodule, slice_pos, n_slices) in enumerate(tqdm(layout, desc="synthetic", disable=not progress)):
        params = params_cache.setdefault(nodule, _nodule_params(seed, nodule, image_size))
        rng = np.random.default_rng([seed, 13, i])
        sample = _render_case(params, slice_pos, n_slices, image_size, styles, missing_rate, with_attributes, rng)
        sample.update(
            case_id=f"syn{i:05d}",
            patient_id=f"synp{patient:04d}",
            nodule_id=f"synn{nodule:04d}",
            slice_index=int(params["z0"] + slice_pos),
        )
        samples.append(validate_sample(sample, source=f"synthetic case {i}"))
    return samples


@register_dataset("synthetic", version="3")
def build_synthetic(
    progress: bool = True,
    n_cases: int = 240,
    n_patients: int | None = None,
    n_raters: int = 4,
    image_size: int = 64,
    seed: int = 1337,
    rater_styles: Sequence[str] | None = None,
    missing_rate: float = 0.0,
    with_attributes: bool = True,
) -> BuiltDataset:
    """Registry builder for ``load_dataset("synthetic", **options)``; see :func:`make_synthetic_samples`."""
    n_patients_resolved, styles = _resolve_options(n_cases, n_patients, n_raters, image_size, rater_styles,
                                                   missing_rate)
    samples = make_synthetic_samples(n_cases=n_cases, n_patients=n_patients_resolved, n_raters=n_raters,
                                     image_size=image_size, seed=seed, rater_styles=styles,
                                     missing_rate=missing_rate, with_attributes=with_attributes, progress=progress)
    meta = {
        "semi_synthetic": False,
        "synthetic": True,
        "description": "procedural synthetic data",
        "provenance": "generated by mrseg.data.synthetic (no scan data)",
        "rater_styles": styles,
        "image_size": image_size,
        "seed": seed,
        "missing_rate": missing_rate,
        "n_patients": n_patients_resolved,
    }
    return BuiltDataset(samples=samples, meta=meta)
