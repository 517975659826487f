"""Controlled raters: ``synthetic-raters<N>`` datasets whose raters' mask distributions are known.

Each case has a latent shape, as in ``synthetic``: a lesion with an irregular outline (low
harmonics), a ground-glass halo, and 0-2 small satellite lesions near it. The image is rendered
from that shape only, as ``synthetic`` renders it (:func:`mrseg.data.synthetic.latent_image`: the
shape deformed, cut at a random level with a soft edge, textured, a faint halo of its own extent,
blur and noise), so it reveals where the styles disagree no more than real CT reveals its raters'
disagreement (:mod:`mrseg.data.calibration`'s leak check). Rater ``i`` of N draws its
mask from the latent shape through the fixed style :data:`STYLE_ORDER` ``[i]``; each draw has a
random boundary offset ``j ~ Normal(0, JITTER)`` (and, for ``lobulated``, a random lobe phase and
count), so a style is a *distribution* of masks whose law is known. ``rho`` below is the normalised
distance (1 on the lesion's outline; satellites included unless said otherwise):

- ``over``: over-segments, ``rho <= 1.35 + j``;
- ``under``: under-segments, ``rho <= 0.7 + j``;
- ``smooth``: the reference mask (``rho <= 1 + j``) Gaussian-smoothed (sigma = S/16) and
  thresholded at 0.35: concavities filled, small satellites lost;
- ``misses-small``: the main lesion only, ``rho_main <= 1 + j`` (satellites never marked);
- ``shifted``: the reference mask shifted by ``max(1, round(S/16))`` pixels down and right;
- ``ground-glass``: the main lesion's outline plus its halo, ``rho_main <= 1 + halo + j``;
- ``lobulated``: ``rho <= 1 + j + 0.25 cos(k theta + phase)``, k in 5..8, phase uniform;
- ``reference``: ``rho <= 1 + j``.

N raters take the first N styles (N <= 8). Every rater marks every case (sparsity comes from
training's ``n_present``). :func:`true_draws` draws any number of masks of each style for a case,
so "GED to the true distribution" and per-style recovery (:mod:`mrseg.measures.styles`) can
be computed. Fully synthetic; deterministic by ``seed``; the case at dataset row ``r`` depends only
on ``(seed, r, image_size)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from mrseg.data.contract import validate_sample
from mrseg.data.registry import BuiltDataset, register_dataset
from mrseg.data.synthetic import latent_image

STYLE_ORDER: tuple[str, ...] = ("over", "under", "smooth", "misses-small", "shifted", "ground-glass",
                                "lobulated", "reference")
JITTER = 0.06
RATER_COUNTS: tuple[int, ...] = tuple(range(2, len(STYLE_ORDER) + 1))
NAME_PATTERN = re.compile(r"^synthetic-raters(\d+)$")


def n_raters_of(dataset: str) -> int | None:
    """N of a ``synthetic-raters<N>`` dataset name; None for any other name."""
    m = NAME_PATTERN.match(str(dataset))
    return int(m.group(1)) if m else None


def styles_for(n_raters: int) -> tuple[str, ...]:
    """The styles of raters 0..N-1."""
    if not 1 <= n_raters <= len(STYLE_ORDER):
        raise ValueError(f"synthetic-raters: N must be in 1..{len(STYLE_ORDER)}, got {n_raters}")
    return STYLE_ORDER[:n_raters]


@dataclass(frozen=True)
class Geometry:
    """The latent shape of one case: normalised distance fields ``[S,S]`` and the halo width."""

    rho_main: np.ndarray     # 1 on the main lesion's outline
    rho_all: np.ndarray      # min over the main lesion and the satellites
    theta: np.ndarray        # angle around the main lesion's centre
    halo: float
    size: int
    radius: float            # the main lesion's base radius (pixels) before its outline's harmonics


def case_geometry(row: int, image_size: int = 32, seed: int = 1337) -> Geometry:
    """The latent shape of dataset row ``row`` (deterministic in ``(seed, row, image_size)``)."""
    s = int(image_size)
    rng = np.random.default_rng([seed, 29, int(row)])
    centre = s / 2 + rng.normal(0.0, s * 0.05, size=2)
    radius = rng.uniform(0.12, 0.24) * s
    irr = rng.beta(1.5, 2.5)
    harmonics = rng.normal(0.0, 1.0, size=(3, 2))
    halo = float(rng.uniform(0.2, 0.6))
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    dy, dx = yy - centre[0], xx - centre[1]
    theta = np.arctan2(dy, dx)
    wobble = sum(0.15 * irr * (a * np.cos(k * theta) + b * np.sin(k * theta))
                 for k, (a, b) in zip((2, 3, 4), harmonics))
    rho_main = np.hypot(dy, dx) / (radius * np.clip(1.0 + wobble, 0.5, 1.6))
    rho_all = rho_main.copy()
    for _ in range(int(rng.choice([0, 1, 2], p=[0.3, 0.45, 0.25]))):
        angle = rng.uniform(0, 2 * np.pi)
        dist = radius * rng.uniform(1.7, 2.4)
        r_sat = max(rng.uniform(0.04, 0.07) * s, 1.2)
        cy, cx = centre[0] + dist * np.sin(angle), centre[1] + dist * np.cos(angle)
        rho_all = np.minimum(rho_all, np.hypot(yy - cy, xx - cx) / r_sat)
    return Geometry(rho_main, rho_all, theta, halo, s, float(radius))


def style_draws(geometry: Geometry, style: str, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """``n_draws`` masks of ``style`` for one case: uint8 ``[K,S,S]`` (module docstring)."""
    if style not in STYLE_ORDER:
        raise ValueError(f"unknown rater style {style!r}; choose from {list(STYLE_ORDER)}")
    g = geometry
    j = rng.normal(0.0, JITTER, size=n_draws)[:, None, None]
    if style == "over":
        out = g.rho_all[None] <= 1.35 + j
    elif style == "under":
        out = g.rho_all[None] <= 0.7 + j
    elif style == "smooth":
        ref = (g.rho_all[None] <= 1.0 + j).astype(np.float64)
        out = ndimage.gaussian_filter(ref, sigma=(0, g.size / 16, g.size / 16)) > 0.35
    elif style == "misses-small":
        out = g.rho_main[None] <= 1.0 + j
    elif style == "shifted":
        d = max(1, round(g.size / 16))
        ref = g.rho_all[None] <= 1.0 + j
        out = np.zeros_like(ref)
        out[:, d:, d:] = ref[:, :-d, :-d]
    elif style == "ground-glass":
        out = g.rho_main[None] <= 1.0 + g.halo + j
    elif style == "lobulated":
        k = rng.integers(5, 9, size=n_draws)[:, None, None]
        phase = rng.uniform(0, 2 * np.pi, size=n_draws)[:, None, None]
        out = g.rho_all[None] <= 1.0 + j + 0.25 * np.cos(k * g.theta[None] + phase)
    else:  # reference
        out = g.rho_all[None] <= 1.0 + j
    return out.astype(np.uint8)


def true_draws(row: int, n_raters: int, n_per_style: int, image_size: int = 32, seed: int = 1337,
               draw_seed: int = 0) -> np.ndarray:
    """``n_per_style`` draws of each of the N styles for dataset row ``row``: uint8 ``[N,K,S,S]``.
    The raters' true mask distribution is the equal mixture of the N styles. Draws are seeded by
    ``(draw_seed, row)``, independent of the dataset's own rater masks."""
    g = case_geometry(row, image_size, seed)
    rng = np.random.default_rng([seed, 31, int(draw_seed), int(row)])
    return np.stack([style_draws(g, style, n_per_style, rng) for style in styles_for(n_raters)])


def render_image(geometry: Geometry, rng: np.random.Generator) -> np.ndarray:
    """Image ``[1,S,S]`` float32 in [0, 1] from the latent shape only (never from rater masks),
    drawn as :func:`mrseg.data.synthetic.latent_image` draws it: deformed, randomly cut, textured,
    a faint halo of its own extent, blur and noise, so the image does not reveal where the styles
    disagree more than real CT reveals its raters' disagreement."""
    s = geometry.size
    background = 0.2 + 0.06 * ndimage.gaussian_filter(rng.normal(size=(s, s)), sigma=s / 12) * (s / 12)
    return latent_image(geometry.rho_all, geometry.rho_main, geometry.halo, geometry.radius, background,
                        rng.uniform(0.65, 0.9), rng.uniform(0.08, 0.2), rng)


def make_controlled_samples(n_raters: int, n_cases: int = 160, image_size: int = 32,
                            seed: int = 1337) -> list[dict[str, Any]]:
    """Contract samples of ``synthetic-raters<N>``: one case per patient (grouped folds = cases)."""
    if n_cases < 4:
        raise ValueError(f"synthetic-raters{n_raters}: n_cases must be >= 4, got {n_cases}")
    if image_size < 16:
        raise ValueError(f"synthetic-raters{n_raters}: image_size must be >= 16, got {image_size}")
    styles = styles_for(n_raters)
    samples = []
    for row in range(n_cases):
        g = case_geometry(row, image_size, seed)
        rng = np.random.default_rng([seed, 37, row])
        masks = np.concatenate([style_draws(g, style, 1, rng) for style in styles])
        sample = {"image": render_image(g, rng), "masks": masks, "present": np.ones(len(styles), dtype=bool),
                  "case_id": f"ctl{row:05d}", "patient_id": f"ctlp{row:05d}", "nodule_id": f"ctln{row:05d}",
                  "slice_index": 0}
        samples.append(validate_sample(sample, source=f"synthetic-raters{n_raters} case {row}"))
    return samples


def _register(n: int) -> None:
    @register_dataset(f"synthetic-raters{n}", version="2")
    def build(progress: bool = True, n_cases: int = 160, image_size: int = 32, seed: int = 1337) -> BuiltDataset:
        samples = make_controlled_samples(n, n_cases=n_cases, image_size=image_size, seed=seed)
        meta = {"semi_synthetic": False, "synthetic": True, "controlled_raters": True,
                "description": f"procedural synthetic data with {n} raters of known styles",
                "provenance": "generated by mrseg.data.controlled (no scan data)",
                "rater_styles": list(styles_for(n)), "image_size": image_size, "seed": seed, "n_cases": n_cases}
        return BuiltDataset(samples=samples, meta=meta)


for _n in RATER_COUNTS:
    _register(_n)
