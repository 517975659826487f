"""Synthetic CT rendering of a lung-nodule patch around real rater masks (semi-synthetic data).

The renderer works in Hounsfield-like units and maps them to ``[0, 1]`` with a fixed window
(:attr:`PhantomParams.window`), calibrated against 28 real LIDC slices (see
:mod:`mrseg.data.calibration`). Layers, back to front:

- lung parenchyma: a base density plus fine and coarse correlated noise (texture);
- vessels: branching tapered curves and a few short, thick segments (vessels crossing the slice);
- sometimes a chest wall: a curved soft-tissue region with a fat layer and, sometimes, a rib,
  kept clear of the nodule;
- the nodule, drawn from a *latent boundary* (:func:`latent_depth`): the raters' mean mask blurred
  (more for a poorly defined margin), elastically deformed and cut at a smooth random level between
  the raters' intersection and union. The per-pixel rater count reaches the image only through this
  smoothed, deformed outline, so the image does not reveal the raters' agreement pixel by pixel
  more than real CT does (:func:`mrseg.data.calibration.leak_comparison` measures both).
  The mean *texture* rating (1 non-solid ... 5 solid) sets how solid
  the nodule is (a solid component deep inside a ground-glass body), the mean *margin* rating
  (1 poorly defined ... 5 sharp) the width of its edge, the mean *spiculation* rating adds thin
  spicules from the boundary and a mean *calcification* rating below 5.5 a dense focus.
  Disagreement between the raters shows only as a faint, blurred margin around the whole nodule,
  whose width grows with one number: the difference of the union's and the intersection's radii;
- scanner blur (point-spread function) and noise.

Every draw comes from ``numpy.random.default_rng(seed)`` (the background and the scanner) and
``default_rng([seed, 3])`` (the nodule): the same masks, ratings and seed always give the same
image (:func:`seed_from` turns a case id into a seed). Version 2 of the renderer painted a solid
core where the raters agreed and ground glass where they disagreed, so every image carried its own
raters' agreement map; version 3 replaces that with the latent boundary.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter, map_coordinates

ATTR = {"calcification": 2, "margin": 4, "spiculation": 6, "texture": 7}
# ratings used when a patch has none (the real reference slices): mid-range texture and margin
RATING_DEFAULTS = {"texture": 4.5, "margin": 4.0, "spiculation": 1.5, "calcification": 6.0}


@dataclass(frozen=True)
class PhantomParams:
    """Densities (HU) and geometry of the renderer; defaults are the calibrated values."""

    window: tuple[float, float] = (-1000.0, 1460.0)  # HU mapped to 0 and 1
    lung_hu: float = -870.0
    lung_fine_hu: float = 22.0  # amplitude of fine parenchymal texture
    lung_coarse_hu: float = 30.0  # amplitude of slow density variation
    vessel_hu: float = 30.0
    n_vessels: float = 6.0  # mean number of vessel trees
    wall_probability: float = 0.8
    wall_hu: float = 45.0
    fat_hu: float = -330.0
    bone_hu: float = 650.0
    solid_hu: float = 110.0
    ggo_hu: float = -520.0
    calcification_hu: float = 700.0
    psf_sigma_px: float = 0.7
    noise_hu: float = 50.0
    # the nodule's latent boundary (renderer v3)
    latent_blur_px: float = 1.5  # blur of the raters' mean mask for a sharp margin (rating 5)
    elastic_px: float = 1.0  # SD of the elastic displacement of the boundary ...
    elastic_per_disagreement: float = 0.5  # ... plus this fraction of the raters' disagreement (px)
    elastic_sigma_px: float = 4.0  # smoothness of that displacement
    level_range: tuple[float, float] = (0.2, 0.6)  # cut level of the blurred mean mask (1 = intersection)
    level_jitter: float = 0.08  # SD of the smooth spatial variation of the cut level
    edge_px: float = 0.6  # half-width of the nodule's edge ramp for a sharp margin (rating 5)
    nodule_mottle_hu: float = 40.0  # SD of the nodule's internal density variation (solid)
    halo_opacity: float = 0.25  # strength of the faint margin that marks rater disagreement


DEFAULT_PARAMS = PhantomParams()


def seed_from(text: str) -> int:
    """A stable 63-bit seed from a string (independent of Python's hash randomisation)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _draw_curve(canvas: np.ndarray, rng: np.random.Generator, start: np.ndarray, angle: float,
                length: float, curl: float) -> list[tuple[np.ndarray, float]]:
    """Draw a smooth random curve (a 1-px line of ones) on ``canvas``; return a few of its points
    with their headings (for branching)."""
    h, w = canvas.shape
    step = 4.0
    n = max(1, int(length / step))
    headings = angle + np.cumsum(rng.normal(0, curl, n)) if curl > 0 else np.full(n, angle)
    nodes = np.vstack([start, start + np.cumsum(step * np.c_[np.sin(headings), np.cos(headings)], axis=0)])
    t = np.arange(0, n * step + 1e-9, 0.5) / step  # dense samples along the polyline (0.5 px apart)
    idx = np.minimum(t.astype(int), n - 1)
    frac = (t - idx)[:, None]
    pts = np.rint(nodes[idx] * (1 - frac) + nodes[idx + 1] * frac).astype(int)
    ok = (pts[:, 0] >= 0) & (pts[:, 0] < h) & (pts[:, 1] >= 0) & (pts[:, 1] < w)
    canvas[pts[ok, 0], pts[ok, 1]] = 1.0
    return [(nodes[i + 1], float(headings[i])) for i in range(0, n, max(1, n // 4))]


def _vessels(shape: tuple[int, int], rng: np.random.Generator, p: PhantomParams) -> np.ndarray:
    """Vessel opacity map in [0, 1]: tapered branching curves plus a few cross-sections."""
    h, w = shape
    widths = (0.45, 0.7, 1.0, 1.5)  # Gaussian sigma (px) of each width class
    peaks = (0.55, 0.75, 0.9, 1.0)  # thin vessels are partial-volumed: lower peak density
    canvases = [np.zeros(shape, dtype=np.float32) for _ in widths]
    for _ in range(rng.poisson(p.n_vessels)):
        cls = int(rng.integers(1, len(widths)))
        start = rng.uniform([-10, -10], [h + 10, w + 10])
        points = _draw_curve(canvases[cls], rng, start, rng.uniform(0, 2 * np.pi), rng.uniform(15, 70), 0.15)
        for _ in range(rng.poisson(1.5)):  # thinner branches
            if cls == 0 or not points:
                break
            pos, heading = points[int(rng.integers(len(points)))]
            _draw_curve(canvases[cls - 1], rng, pos, heading + rng.choice([-1, 1]) * rng.uniform(0.4, 1.0),
                        rng.uniform(10, 40), 0.2)
    for _ in range(rng.poisson(2.0)):  # vessels crossing the slice: short thick blobs
        cls = int(rng.integers(2, len(widths)))
        centre = rng.uniform([0, 0], [h, w])
        _draw_curve(canvases[cls], rng, centre, rng.uniform(0, 2 * np.pi), rng.uniform(1, 4), 0.0)
    total = np.zeros(shape, dtype=np.float32)
    for sigma, peak, canvas in zip(widths, peaks, canvases):
        if canvas.any():
            # a blurred 1-px line peaks at 1/(sqrt(2 pi) sigma): rescale so the centre is opaque
            blurred = gaussian_filter(canvas, sigma, truncate=3.0) * np.sqrt(2 * np.pi) * sigma * 1.2
            total = np.maximum(total, np.minimum(blurred, 1) * peak)
    return total


def _chest_wall(shape: tuple[int, int], rng: np.random.Generator, union: np.ndarray,
                p: PhantomParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soft-tissue, fat and bone fractions ``[H, W]`` of a curved chest wall clear of ``union``."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    normal = np.array([np.sin(theta), np.cos(theta)])
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    # signed depth along the normal; the wall starts beyond the nodule's furthest pixel
    depth = (yy - centre[0]) * normal[0] + (xx - centre[1]) * normal[1]
    reach = (depth[union > 0].max() + 6) if union.any() else 10.0
    offset = max(float(reach), rng.uniform(4, 35))
    radius = rng.uniform(80, 300)  # curvature of the pleura
    lateral = -(yy - centre[0]) * normal[1] + (xx - centre[1]) * normal[0]
    boundary = offset + lateral**2 / (2 * radius) + 2.0 * np.sin(lateral / rng.uniform(6, 14) + rng.uniform(0, 6))
    inside = depth - boundary  # > 0 inside the wall
    tissue = _smoothstep(inside / 1.5 + 0.5)
    fat_depth = rng.uniform(3, 10)
    fat = _smoothstep((inside - fat_depth) / 2 + 0.5) * (1 - _smoothstep((inside - fat_depth - rng.uniform(6, 30)) / 2 + 0.5))
    bone = np.zeros(shape, dtype=np.float32)
    if rng.random() < 0.5:  # a rib cut obliquely: an elliptical ring inside the wall
        t = rng.uniform(-40, 40)
        d = fat_depth + rng.uniform(4, 14)
        rib_centre = centre + normal * (offset + d) + np.array([-normal[1], normal[0]]) * t
        a, b = rng.uniform(8, 16), rng.uniform(4, 7)
        u = ((yy - rib_centre[0]) * normal[0] + (xx - rib_centre[1]) * normal[1]) / b
        v = (-(yy - rib_centre[0]) * normal[1] + (xx - rib_centre[1]) * normal[0]) / a
        r = np.sqrt(u**2 + v**2)
        bone = (_smoothstep((1 - r) * 6) * 0.55 + _smoothstep((1 - np.abs(r - 0.85) * 6)) * 0.45).astype(np.float32)
    return tissue.astype(np.float32), fat.astype(np.float32), bone


def _rating(attributes: np.ndarray | None, present: np.ndarray, name: str, default: float) -> float:
    if attributes is None:
        return default
    values = attributes[present, ATTR[name]] if present.any() else attributes[:, ATTR[name]]
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else default


def _smooth_noise(shape: tuple[int, int], rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise with unit SD (``sigma`` in px)."""
    # white noise blurred by a 2-D Gaussian keeps a variance of 1 / (4 pi sigma^2)
    return gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma) * (2 * np.sqrt(np.pi) * sigma)


def latent_depth(consensus: np.ndarray, margin: float, disagreement: float, rng: np.random.Generator,
                 p: PhantomParams = DEFAULT_PARAMS) -> np.ndarray:
    """Signed distance (px; > 0 inside) to the nodule's latent boundary.

    The boundary is a smooth random level set of the raters' mean mask ``consensus [H,W]``
    (fraction of present raters marking each pixel): the mean mask is blurred (more for a poorly
    defined ``margin``), elastically deformed (more where the raters disagree more: ``disagreement``
    in px, see :func:`_disagreement_px`), and cut at a random level between the raters'
    intersection (level 1) and union (level 0), relative to the blurred mask's maximum, that also
    varies smoothly in space. The pixel-wise rater count therefore shapes the nodule only through
    this smoothed, deformed outline.
    """
    shape = consensus.shape
    sigma = p.latent_blur_px * (1 + (5 - np.clip(margin, 1, 5)) / 4)
    smooth = gaussian_filter(consensus.astype(np.float32), sigma)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    amplitude = p.elastic_px + p.elastic_per_disagreement * disagreement
    dy = amplitude * _smooth_noise(shape, rng, p.elastic_sigma_px)
    dx = amplitude * _smooth_noise(shape, rng, p.elastic_sigma_px)
    warped = map_coordinates(smooth, [yy + dy, xx + dx], order=1, mode="nearest")
    level = rng.uniform(*p.level_range) + p.level_jitter * _smooth_noise(shape, rng, 2 * p.elastic_sigma_px)
    inside = warped > level * warped.max()
    if not inside.any():  # a tiny union: keep its densest pixel
        inside = warped >= warped.max()
    return np.where(inside, distance_transform_edt(inside) - 0.5,
                    0.5 - distance_transform_edt(~inside)).astype(np.float32)


def _disagreement_px(masks: np.ndarray, present: np.ndarray) -> float:
    """One number for how much the raters disagree: the difference of the equivalent radii (px)
    of their union and their intersection."""
    marked = masks[present] > 0
    if not marked.any():
        return 0.0
    union, inter = marked.any(axis=0).sum(), marked.all(axis=0).sum()
    return float(np.sqrt(union / np.pi) - np.sqrt(inter / np.pi))


def _draw_nodule(hu: np.ndarray, depth: np.ndarray, ratings: dict[str, float], disagreement: float,
                 rng: np.random.Generator, p: PhantomParams) -> np.ndarray:
    """Paint the nodule whose latent boundary is ``depth`` (see :func:`latent_depth`) over ``hu``."""
    shape = hu.shape
    solidity = float(np.clip((ratings["texture"] - 1) / 4, 0, 1))
    sharpness = float(np.clip(ratings["margin"], 1, 5))
    edge = p.edge_px * (1 + (5 - sharpness) / 2)  # poorly defined margins ramp over a wider edge
    opacity = _smoothstep(depth / (2 * edge) + 0.5)
    dmax = float(depth.max())
    ggo_hu = p.lung_hu + (p.ggo_hu - p.lung_hu) * rng.uniform(0.3, 0.8)
    solid_hu = p.solid_hu + rng.normal(0, 60)
    core_hu = ggo_hu + (solid_hu - ggo_hu) * (0.4 + 0.6 * solidity)
    # part-solid nodules: a solid component deeper than (1 - solidity) of the nodule's half-width
    core = _smoothstep((depth - (1 - solidity) * dmax) / max(edge, 1.0) + 0.5)
    mottle = p.nodule_mottle_hu * (1 + 2 * (1 - solidity)) * _smooth_noise(shape, rng, 1.5)
    nodule_hu = ggo_hu * (1 - core) + core_hu * core + mottle
    # disagreement shows only as a faint blurred margin around the whole nodule
    width = max(disagreement * rng.uniform(0.5, 1.0), 0.5)
    weight = np.maximum(opacity, p.halo_opacity * rng.uniform(0.5, 1.0) * _smoothstep(depth / width + 1))
    if ratings["spiculation"] > 1.5 and dmax > 0:
        spikes = np.zeros(shape, dtype=np.float32)
        edge_pixels = np.argwhere((depth > 0) & (depth < 1.5))
        centre = np.argwhere(depth > 0).mean(axis=0)
        for _ in range(int(round((ratings["spiculation"] - 1) * 1.5))):
            if not len(edge_pixels):
                break
            start = edge_pixels[int(rng.integers(len(edge_pixels)))].astype(float)
            heading = np.arctan2(*(start - centre)) if (start != centre).any() else rng.uniform(0, 2 * np.pi)
            _draw_curve(spikes, rng, start, heading, rng.uniform(6, 16), 0.1)
        spikes = np.minimum(gaussian_filter(spikes, 0.6) * 1.6, 1) * 0.8
        nodule_hu = np.where(spikes > weight, ggo_hu + (core_hu - ggo_hu) * 0.5, nodule_hu)
        weight = np.maximum(weight, spikes)
    if ratings["calcification"] < 5.5 and dmax > 2:
        focus = _smoothstep((depth - 0.6 * dmax) / (0.3 * dmax))
        nodule_hu = nodule_hu * (1 - focus) + p.calcification_hu * focus
    return hu * (1 - weight) + gaussian_filter(nodule_hu, 0.5) * weight


def render_patch(
    masks: np.ndarray,
    present: np.ndarray,
    attributes: np.ndarray | None = None,
    seed: int = 0,
    params: PhantomParams = DEFAULT_PARAMS,
) -> np.ndarray:
    """Render one synthetic CT patch for rater ``masks [N, H, W]`` (0/1), ``present [N]`` and
    optional ``attributes [N, 9]`` (LIDC order). Returns float32 ``[H, W]`` in ``[0, 1]``."""
    p = params
    masks = np.asarray(masks, dtype=np.float32)
    present = np.asarray(present, dtype=bool)
    shape = masks.shape[1:]
    rng = np.random.default_rng(seed)
    nodule_rng = np.random.default_rng([seed, 3])  # the nodule's own stream: the background ignores it
    consensus = masks[present].mean(axis=0) if present.any() else np.zeros(shape, np.float32)
    union = (consensus > 0).astype(np.float32)
    window, depth = None, None
    if union.any():
        # the nodule lives in a window around the union wide enough for its halo and spicules
        ratings = {name: _rating(attributes, present, name, default) for name, default in RATING_DEFAULTS.items()}
        disagreement = _disagreement_px(masks, present)
        rows, cols = np.nonzero(union)
        pad = 20 + int(np.ceil(disagreement))
        window = (slice(max(rows.min() - pad, 0), rows.max() + pad + 1),
                  slice(max(cols.min() - pad, 0), cols.max() + pad + 1))
        depth = latent_depth(consensus[window], ratings["margin"], disagreement, nodule_rng, p)
        union[window] = np.maximum(union[window], depth > -2)  # the chest wall stays clear of both

    # lung parenchyma
    hu = np.full(shape, p.lung_hu, dtype=np.float32)
    hu += p.lung_fine_hu * gaussian_filter(rng.standard_normal(shape).astype(np.float32), 1.0) * 2.5
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    for _ in range(3):  # slow density variation: a few random low-frequency plane waves
        k = rng.normal(0, 0.03, 2)
        hu += p.lung_coarse_hu / np.sqrt(3) * np.sqrt(2) * np.cos(k[0] * yy + k[1] * xx + rng.uniform(0, 2 * np.pi))
    vessels = _vessels(shape, rng, p)
    hu += vessels * (p.vessel_hu - hu)

    # chest wall (kept clear of the nodule)
    if rng.random() < p.wall_probability:
        tissue, fat, bone = _chest_wall(shape, rng, union, p)
        wall_hu = p.wall_hu + 25 * gaussian_filter(rng.standard_normal(shape).astype(np.float32), 2.0) * 4
        wall_hu = wall_hu * (1 - fat) + p.fat_hu * fat
        wall_hu = wall_hu * (1 - bone) + p.bone_hu * bone
        hu = hu * (1 - tissue) + wall_hu * tissue

    # the nodule: drawn from its latent boundary, not from the per-pixel rater count
    if window is not None:
        hu[window] = _draw_nodule(hu[window], depth, ratings, disagreement, nodule_rng, p)

    # scanner: blur and noise
    hu = gaussian_filter(hu, p.psf_sigma_px)
    hu += p.noise_hu * gaussian_filter(rng.standard_normal(shape).astype(np.float32), 0.5) * 2.0
    lo, hi = p.window
    return np.clip((hu - lo) / (hi - lo), 0, 1).astype(np.float32)
