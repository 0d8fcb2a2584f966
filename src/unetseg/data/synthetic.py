"""The embedded default dataset: touching HeLa-like cells in DIC-like images.

The paper's hardest 2D case is DIC-C2DH-HeLa (Ronneberger et al. 2015, Sec. 4,
Fig. 4): densely packed cells, many touching, imaged by differential
interference contrast. This module fakes that offline and deterministically:

1. cells are star-convex shapes (an ellipse with low-frequency radial noise)
   placed in loose groups; every pixel goes to the cell with the smallest
   normalised distance, so overlapping cells share a border with no gap, like
   the Cell Tracking Challenge ground truth;
2. a height (optical path length) map gets a dome per cell, a groove at
   cell-cell contacts, a nucleus with nucleoli and granular cytoplasm;
3. the image is the derivative of the smoothed height map along a fixed shear
   direction plus a little of the height itself (the relief look of DIC), under
   uneven illumination with Poisson and Gaussian noise.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.segmentation import relabel_sequential

from unetseg.data.pairs import Sample
from unetseg.errors import InputError

SHEAR_ANGLE_DEG = 45.0
"""Direction of the DIC shear (degrees, counter-clockwise from +X towards +Y)."""

_COVERAGE = 0.72  # target fraction of the image covered by cells, before overlap
_N_HARMONICS = 4  # radial noise uses cos(k*theta) for k = 2 .. 5
_BACKGROUND = 0.5  # mean background gray as a fraction of 255


def generate(n_images: int, height: int, width: int, n_cells: int, seed: int) -> list[Sample]:
    """Make ``n_images`` synthetic DIC-like image/mask pairs.

    Image ``k`` is drawn from ``np.random.SeedSequence(seed).spawn(n)[k]``, so it
    is the same whatever ``n_images`` is, and the same arguments always give
    byte-identical arrays (for the same numpy/scipy versions).

    Parameters
    ----------
    n_images : int
        Number of pairs (0 gives an empty list).
    height, width : int
        Image size ``(Y, X)`` in pixels, at least 8 each.
    n_cells : int
        Number of cells placed per image (0 or more); a few that end up tiny or
        almost wholly outside the image are dropped.
    seed : int
        Non-negative seed of the whole set.

    Returns
    -------
    list of Sample
        Names ``01_t000``, ``01_t001``, ... (one CTC-style sequence ``01``);
        ``image`` is ``(Y, X)`` ``uint8``; ``mask`` is ``(Y, X)`` ``uint16``
        instance labels, 0 = background, cells numbered ``1..n`` consecutively;
        origin ``"synthetic(seed=S, index=K)"``.
    """
    if n_images < 0:
        raise InputError(f"synthetic.n_images: must be 0 or more, got {n_images}")
    if seed < 0:
        raise InputError(f"synthetic.seed: must be 0 or more, got {seed}")
    _check_size(height, width, n_cells)
    children = np.random.SeedSequence(seed).spawn(n_images)
    samples = []
    width_digits = max(3, len(str(max(n_images - 1, 0))))
    for k, child in enumerate(children):
        image, mask = generate_one(height, width, n_cells, np.random.default_rng(child))
        samples.append(Sample(name=f"01_t{k:0{width_digits}d}", image=image, mask=mask,
                              origin=f"synthetic(seed={seed}, index={k})"))
    return samples


def generate_one(height: int, width: int, n_cells: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Make one DIC-like image of touching cells and its instance mask.

    Parameters
    ----------
    height, width : int
        Image size ``(Y, X)`` in pixels, at least 8 each.
    n_cells : int
        Number of cells to place (0 or more).
    rng : numpy.random.Generator
        The only source of randomness.

    Returns
    -------
    image : np.ndarray
        ``(Y, X)`` ``uint8``, background gray about 128.
    mask : np.ndarray
        ``(Y, X)`` ``uint16`` instance labels, 0 = background, ``1..n``
        consecutive; touching cells share a border with no background gap.
    """
    _check_size(height, width, n_cells)
    cells = _place_cells(height, width, n_cells, rng)
    labels, dist = _rasterise(height, width, cells)
    min_area = max(12.0, 0.06 * np.pi * _mean_radius(height, width, n_cells) ** 2)
    labels = _clean_labels(labels, min_area)
    relief = _height_map(labels, dist, cells, rng)
    image = _render(relief, rng)
    mask = relabel_sequential(labels)[0].astype(np.uint16)
    return image, mask


def _check_size(height: int, width: int, n_cells: int) -> None:
    if height < 8 or width < 8:
        raise InputError(f"synthetic.height/width: must be at least 8, got {height}x{width}")
    if not 0 <= n_cells < 65535:
        raise InputError(f"synthetic.n_cells: must be in 0..65534, got {n_cells}")


def _mean_radius(height: int, width: int, n_cells: int) -> float:
    return float(np.sqrt(_COVERAGE * height * width / (np.pi * max(n_cells, 1))))


def _place_cells(height: int, width: int, n_cells: int,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Cell centres, radii and shape parameters, in loose groups with gaps between.

    Centres may lie slightly outside the image so some cells are cut by the
    border. A candidate centre closer than ``0.65 (r_i + r_j)`` to a placed cell
    is rejected (up to 32 tries per cell) so no cell is swallowed by its
    neighbours, while cells closer than ``r_i + r_j`` still overlap and touch.
    """
    r_mean = _mean_radius(height, width, n_cells)
    radius = r_mean * rng.lognormal(0.0, 0.22, n_cells)
    n_groups = max(1, int(round(n_cells / 7)))
    group_c = rng.uniform([0.1 * height, 0.1 * width], [0.9 * height, 0.9 * width], (n_groups, 2))
    group_of = rng.integers(0, n_groups, n_cells)
    spread = r_mean * np.sqrt(n_cells / n_groups) * 0.9
    tries = 32
    cand = group_c[group_of][:, None, :] + rng.normal(0.0, spread, (n_cells, tries, 2))
    margin = 0.3 * r_mean
    lo, hi = np.array([-margin, -margin]), np.array([height + margin, width + margin])
    cand = np.where((cand < lo) | (cand > hi), rng.uniform(lo, hi, (n_cells, tries, 2)), cand)
    centre = np.full((n_cells, 2), np.nan)
    for i in range(n_cells):
        d = np.linalg.norm(cand[i][:, None, :] - centre[None, :i, :], axis=2)  # (tries, i)
        ok = np.all(~(d < 0.65 * (radius[i] + radius[None, :i])), axis=1)
        if ok.any():
            centre[i] = cand[i][np.argmax(ok)]
    keep = ~np.isnan(centre[:, 0])
    n = int(keep.sum())
    rounded = rng.random(n) < 0.08  # a few mitotic-looking round, tall cells
    return {
        "centre": centre[keep],
        "radius": np.where(rounded, 0.7, 1.0) * radius[keep],
        "angle": rng.uniform(0.0, np.pi, n),
        "elong": np.where(rounded, 1.0, rng.uniform(1.0, 1.7, n)),
        "harm_amp": np.where(rounded[:, None], 0.2, 1.0)
        * rng.uniform(0.0, 1.0, (n, _N_HARMONICS)) * (0.3 / np.arange(2, 2 + _N_HARMONICS)),
        "harm_phase": rng.uniform(0.0, 2 * np.pi, (n, _N_HARMONICS)),
        "dome": np.where(rounded, 1.8, 1.0) * rng.uniform(0.25, 0.4, n),
        "nuc_offset": rng.uniform(0.0, 0.25, n),
        "nuc_dir": rng.uniform(0.0, 2 * np.pi, n),
        "nuc_size": rng.uniform(0.35, 0.5, n),
        "nuc_height": rng.uniform(0.3, 0.6, n),
        "n_nucleoli": rng.integers(1, 4, n),
    }


def _window(cy: float, cx: float, reach: float, height: int,
            width: int) -> tuple[slice, slice] | None:
    y0, y1 = max(int(np.floor(cy - reach)), 0), min(int(np.ceil(cy + reach)) + 1, height)
    x0, x1 = max(int(np.floor(cx - reach)), 0), min(int(np.ceil(cx + reach)) + 1, width)
    if y0 >= y1 or x0 >= x1:
        return None
    return slice(y0, y1), slice(x0, x1)


def _ellipse_coords(win: tuple[slice, slice], cy: float, cx: float, a: float, b: float,
                    angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Normalised radius and polar angle of a window's pixels in a rotated ellipse frame."""
    yy = np.arange(win[0].start, win[0].stop, dtype=np.float64)[:, None] - cy
    xx = np.arange(win[1].start, win[1].stop, dtype=np.float64)[None, :] - cx
    u = (xx * np.cos(angle) + yy * np.sin(angle)) / a
    v = (-xx * np.sin(angle) + yy * np.cos(angle)) / b
    return np.hypot(u, v), np.arctan2(v, u)


def _rasterise(height: int, width: int,
               cells: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Label every pixel with the cell of least normalised distance ``d < 1``.

    ``d = rho / (1 + sum_k c_k cos(k theta + phi_k))`` with ``(rho, theta)`` the
    polar coordinates in the cell's ellipse frame: a multiplicatively weighted
    Voronoi tessellation clipped to each cell's star-convex outline.
    Returns int32 labels (cell index + 1) and the float64 ``d`` of the owner
    (1 on background).
    """
    labels = np.zeros((height, width), np.int32)
    dist = np.ones((height, width), np.float64)
    ks = np.arange(2, 2 + _N_HARMONICS)
    for i, (cy, cx) in enumerate(cells["centre"]):
        r, e = cells["radius"][i], cells["elong"][i]
        a, b = r * np.sqrt(e), r / np.sqrt(e)
        amp = cells["harm_amp"][i]
        win = _window(cy, cx, a * (1.0 + amp.sum()), height, width)
        if win is None:
            continue
        rho, theta = _ellipse_coords(win, cy, cx, a, b, cells["angle"][i])
        phase = cells["harm_phase"][i][:, None, None]
        wobble = 1.0 + np.tensordot(amp, np.cos(ks[:, None, None] * theta + phase), 1)
        d = rho / wobble
        closer = d < dist[win]
        dist[win][closer] = d[closer]
        labels[win][closer] = i + 1
    return labels, dist


def _clean_labels(labels: np.ndarray, min_area: float) -> np.ndarray:
    """Keep each cell's largest connected piece; drop cells smaller than ``min_area``."""
    out = labels.copy()
    for i, sl in enumerate(ndimage.find_objects(labels)):
        if sl is None:
            continue
        own = labels[sl] == i + 1
        pieces, n = ndimage.label(own)
        if n > 1:
            biggest = np.argmax(np.bincount(pieces.ravel())[1:]) + 1
            out[sl][own & (pieces != biggest)] = 0
            own = pieces == biggest
        if own.sum() < min_area:
            out[sl][own] = 0
    return out


def _contacts(labels: np.ndarray) -> np.ndarray:
    """Boolean ``(Y, X)``: cell pixels 4-adjacent to a pixel of a different cell."""
    out = np.zeros(labels.shape, bool)
    for axis in (0, 1):
        a = labels.take(np.arange(labels.shape[axis] - 1), axis)
        b = labels.take(np.arange(1, labels.shape[axis]), axis)
        edge = (a != b) & (a > 0) & (b > 0)
        pad_lo = [(0, 0), (0, 0)]
        pad_hi = [(0, 0), (0, 0)]
        pad_lo[axis], pad_hi[axis] = (0, 1), (1, 0)
        out |= np.pad(edge, pad_lo) | np.pad(edge, pad_hi)
    return out


def _band_noise(shape: tuple[int, int], fine: float, coarse: float,
                rng: np.random.Generator) -> np.ndarray:
    """Band-pass Gaussian noise (difference of Gaussians), unit standard deviation."""
    white = rng.standard_normal(shape)
    band = ndimage.gaussian_filter(white, fine) - ndimage.gaussian_filter(white, coarse)
    return band / max(float(band.std()), 1e-12)


def _height_map(labels: np.ndarray, dist: np.ndarray, cells: dict[str, np.ndarray],
                rng: np.random.Generator) -> np.ndarray:
    """Optical path length ``(Y, X)`` float64 in pixel units.

    Each cell is a dome ``A r sqrt(1 - d^2)``, lowered by a Gaussian groove of
    about two thirds of its height at contacts with other cells, plus a raised
    nucleus with 1-3 nucleoli and band-pass granular texture in the cytoplasm.
    The background is nearly flat with faint debris.
    """
    shape = labels.shape
    inside = labels > 0
    n = len(cells["radius"])
    amp = np.concatenate([[0.0], cells["dome"] * cells["radius"]])
    dome = amp[labels] * np.sqrt(np.clip(1.0 - dist**2, 0.0, 1.0))
    from_contact = ndimage.distance_transform_edt(~_contacts(labels))
    groove = 1.0 - rng.uniform(0.6, 0.75) * np.exp(-0.5 * (from_contact / 1.4) ** 2)

    nucleus = np.zeros(shape)
    spots = np.zeros(shape)
    for i in range(n):
        cy, cx = cells["centre"][i]
        r = cells["radius"][i]
        off = cells["nuc_offset"][i] * r
        ny, nx = cy + off * np.sin(cells["nuc_dir"][i]), cx + off * np.cos(cells["nuc_dir"][i])
        nr = cells["nuc_size"][i] * r
        win = _window(ny, nx, nr * 1.3, *shape)
        if win is None:
            continue
        rho, _ = _ellipse_coords(win, ny, nx, nr * 1.15, nr / 1.15, cells["angle"][i])
        own = labels[win] == i + 1
        plateau = np.sqrt(np.clip(1.0 - rho**4, 0.0, 1.0))
        nucleus[win] += own * cells["nuc_height"][i] * 0.25 * r * plateau
        k = cells["n_nucleoli"][i]
        t, s = rng.uniform(0.0, 2 * np.pi, k), 0.55 * nr * np.sqrt(rng.random(k))
        py = np.round(ny + s * np.sin(t)).astype(int)
        px = np.round(nx + s * np.cos(t)).astype(int)
        ok = (py >= 0) & (py < shape[0]) & (px >= 0) & (px < shape[1])
        np.add.at(spots, (py[ok], px[ok]), rng.uniform(0.6, 1.0, int(ok.sum())))
    in_nucleus = nucleus > 0
    nucleoli = ndimage.gaussian_filter(spots, 1.6) * (2 * np.pi * 1.6**2) * 1.5

    granules = _band_noise(shape, 0.9, 3.0, rng)
    vesicles = ndimage.gaussian_filter((rng.random(shape) < 0.012).astype(np.float64), 1.1) * 12.0
    cyto = inside * np.where(in_nucleus, 0.3, 1.0)
    fade = np.clip(2.0 * dome / np.maximum(amp[labels], 1e-9), 0.0, 1.0)  # thin near edges
    texture = cyto * (0.45 * granules + vesicles) * fade

    debris = ndimage.gaussian_filter((rng.random(shape) < 0.0015).astype(np.float64), 1.5) * 10.0
    background = ~inside * (0.15 * _band_noise(shape, 2.0, 8.0, rng) + debris)
    return dome * groove + (nucleus + nucleoli) * inside + texture + background


def _render(relief: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """DIC-like uint8 ``(Y, X)`` image from an optical path length map.

    Intensity = background + gain x (shear-direction derivative of the
    Gaussian-smoothed height) + a little of the height, times a smooth
    illumination field, then Poisson (shot) and Gaussian (read) noise.
    """
    h = ndimage.gaussian_filter(relief, 1.0)
    gy, gx = np.gradient(h)
    theta = np.deg2rad(SHEAR_ANGLE_DEG)
    shear = np.cos(theta) * gx + np.sin(theta) * gy
    signal = _BACKGROUND + 0.14 * shear + 0.005 * h

    ny, nx = relief.shape
    yy = np.linspace(-1.0, 1.0, ny)[:, None]
    xx = np.linspace(-1.0, 1.0, nx)[None, :]
    tilt = rng.uniform(-0.12, 0.12, 2)
    freq = rng.uniform(-1.5, 1.5, (3, 2)) * np.pi  # up to 1.5 cycles per image
    phase = rng.uniform(0.0, 2 * np.pi, 3)
    blotch = sum(0.03 * np.cos(fy * yy + fx * xx + p)
                 for (fy, fx), p in zip(freq, phase, strict=True))
    illumination = 1.0 + tilt[0] * yy + tilt[1] * xx + blotch

    photons = 800.0
    lam = np.clip(signal * illumination, 0.0, None) * photons
    noisy = rng.poisson(lam) / photons + rng.normal(0.0, 0.008, relief.shape)
    return np.clip(np.round(noisy * 255.0), 0, 255).astype(np.uint8)
