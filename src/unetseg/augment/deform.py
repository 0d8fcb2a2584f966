"""Data augmentation of one image/mask pair (paper §3.1): elastic deformation, flips, gray values.

The paper's main augmentation is a smooth elastic deformation: random displacement vectors on a
coarse 3 x 3 grid, drawn from a Gaussian with 10 px standard deviation, interpolated bicubically to
per-pixel displacements. Here the elastic field and an optional small rotation are merged
into ONE array of sampling coordinates, so every channel is resampled exactly once:

- the image with cubic spline interpolation (``scipy.ndimage.map_coordinates``, order 3),
- the instance mask with nearest neighbour, by rounding the same coordinates and indexing, so
  labels keep exactly their original ids and no new value appears.

Pixels sampled from outside the image are mirrored with ``mode="reflect"`` (``d c b a | a b c d |
d c b a``): the same half-sample mirroring as :func:`unetseg.tiling.mirror_pad`
(``numpy.pad(mode="symmetric")``, paper Fig. 2), so a pixel outside the image has the same value
whether the deformation or the overlap-tile padding created it, and the spline prefilter handles
this boundary exactly. Flips and 90° rotations are then applied exactly with numpy; gray-value
changes touch the image only.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage as ndi

from unetseg.errors import InputError

_MODE = "reflect"


def _check(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise InputError(f"{key}: {problem}")


@functools.lru_cache(maxsize=32)
def _upsample_matrix(size: int, points: int) -> np.ndarray:
    """``(size, points)`` float64 matrix ``M``: ``M @ v`` is the cubic spline through ``v`` at
    ``size`` positions from node 0 to node ``points - 1`` (end nodes on the end pixels)."""
    t = np.linspace(0.0, points - 1.0, size)
    coords = np.stack(np.broadcast_arrays(t[:, None], np.arange(points, dtype=np.float64)[None, :]))
    matrix = ndi.map_coordinates(np.eye(points), coords, order=3, mode="mirror")
    matrix.flags.writeable = False
    return matrix


def elastic_field(shape: tuple[int, int], points: int, sigma: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Random smooth displacement field (paper §3.1).

    Displacement vectors are drawn independently from N(0, ``sigma``) px on a coarse
    ``points`` x ``points`` grid whose corner nodes sit on the image corners, then upsampled
    with bicubic (cubic B-spline, interpolating) interpolation to every pixel. The
    upsampling is separable (one small product per axis), done with ``numpy.einsum`` rather
    than BLAS, whose idle threads would spin and slow down the resampling that follows.

    Parameters
    ----------
    shape : (Y, X) of the image.
    points : int >= 2, grid nodes per axis (paper: 3).
    sigma : float >= 0, standard deviation of the node displacements in pixels (paper: 10).
    rng : generator; draws exactly ``2 * points**2`` standard normals.

    Returns
    -------
    (2, Y, X) float64 displacement in pixels; axis 0 is (dy, dx). float64 because
    ``scipy.ndimage.map_coordinates`` converts any other coordinate dtype to float64 first.
    """
    _check(points >= 2, "elastic_points", f"must be >= 2; got {points}")
    _check(sigma >= 0, "elastic_sigma", f"must be >= 0; got {sigma}")
    nodes = rng.standard_normal((2, points, points)) * float(sigma)
    wy, wx = (_upsample_matrix(n, points) for n in shape)
    return np.einsum("ayk,xk->ayx", np.einsum("yj,ajk->ayk", wy, nodes), wx)


def sampling_coords(shape: tuple[int, int], displacement: np.ndarray | None = None,
                    angle_deg: float = 0.0) -> np.ndarray:
    """Source coordinates of every output pixel: rotation about the centre and displacement.

    Output pixel ``p`` samples the input at ``c + R(angle) (p - c) + displacement[:, p]``
    with ``c`` the image centre. A positive angle turns the content clockwise as displayed
    (row 0 on top): 90° equals ``numpy.rot90(image, -1)`` on a square image.

    Parameters
    ----------
    shape : (Y, X) of the image.
    displacement : (2, Y, X) float, e.g. from :func:`elastic_field`; None = no displacement.
    angle_deg : rotation angle in degrees.

    Returns
    -------
    (2, Y, X) float64 coordinates (row, column) for :func:`warp`.
    """
    ny, nx = shape
    cy, cx = (ny - 1) / 2.0, (nx - 1) / 2.0
    y = np.arange(ny, dtype=np.float64) - cy
    x = np.arange(nx, dtype=np.float64) - cx
    a = np.deg2rad(angle_deg)
    cos, sin = np.cos(a), np.sin(a)
    coords = np.empty((2, ny, nx), dtype=np.float64)
    if displacement is None:
        coords.fill(0.0)
    else:
        _check(displacement.shape == (2, ny, nx), "displacement",
               f"must have shape {(2, ny, nx)}; got {displacement.shape}")
        coords[...] = displacement
    coords[0] += (cy + cos * y)[:, None]
    coords[0] -= (sin * x)[None, :]
    coords[1] += (cx + sin * y)[:, None]
    coords[1] += (cos * x)[None, :]
    return coords


def _reflect_index(index: np.ndarray, size: int) -> np.ndarray:
    index = np.mod(index, 2 * size)
    return np.minimum(index, 2 * size - 1 - index)


def warp_image(image: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Resample a ``(Y, X)`` image at ``coords``: cubic spline interpolation, mirrored borders.

    Parameters
    ----------
    image : (Y, X) float image (any channel that should be interpolated smoothly, e.g. a
        weight map).
    coords : (2, Y', X') source coordinates from :func:`sampling_coords`.

    Returns
    -------
    (Y', X') float32.
    """
    coefficients = ndi.spline_filter(np.asarray(image, dtype=np.float32), order=3, mode=_MODE,
                                     output=np.float32)
    return ndi.map_coordinates(coefficients, coords, order=3, mode=_MODE, prefilter=False,
                               output=np.float32)


def warp_labels(mask: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Resample a ``(Y, X)`` label image at ``coords`` with nearest neighbour and mirrored borders.

    Rounds the coordinates and indexes the mask with reflected indices (the result equals
    ``map_coordinates(mask, coords, order=0, mode="reflect")``), so every output value is an
    input value: instance ids are kept exactly.

    Parameters
    ----------
    mask : (Y, X) integer labels, e.g. uint16 instances.
    coords : (2, Y', X') source coordinates from :func:`sampling_coords`.

    Returns
    -------
    (Y', X') with the dtype of ``mask``.
    """
    ny, nx = mask.shape
    rows = np.rint(coords[0]).astype(np.int64)
    cols = np.rint(coords[1]).astype(np.int64)
    lo_r, lo_c = int(rows.min()), int(cols.min())
    row_offset = _reflect_index(np.arange(lo_r, int(rows.max()) + 1), ny) * nx
    col_offset = _reflect_index(np.arange(lo_c, int(cols.max()) + 1), nx)
    rows -= lo_r
    cols -= lo_c
    flat = np.take(row_offset, rows)
    flat += np.take(col_offset, cols)
    return np.take(np.ascontiguousarray(mask).ravel(), flat)


def warp(image: np.ndarray, mask: np.ndarray, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Resample an image (cubic) and its instance mask (nearest) at the same ``coords``.

    Parameters
    ----------
    image : (Y, X) float image.
    mask : (Y, X) integer labels.
    coords : (2, Y', X') float64 from :func:`sampling_coords`.

    Returns
    -------
    image : (Y', X') float32.
    mask : (Y', X') with the dtype of ``mask``, a subset of its values.
    """
    return warp_image(image, coords), warp_labels(mask, coords)


def flip_rot90(image: np.ndarray, mask: np.ndarray, flips: tuple[bool, bool],
               k: int) -> tuple[np.ndarray, np.ndarray]:
    """Flip (vertical, horizontal) and rotate by ``k`` x 90° both arrays identically, exactly.

    ``k`` must be even for a non-square image so the shape is kept.

    Parameters
    ----------
    image, mask : (Y, X) arrays of any dtype.
    flips : (flip rows, flip columns), i.e. vertical and horizontal flip.
    k : number of counter-clockwise quarter turns (``numpy.rot90``).

    Returns
    -------
    image, mask : contiguous copies, same shape and dtype as the inputs.
    """
    _check(k % 2 == 0 or image.shape[0] == image.shape[1], "rotate90",
           f"odd k={k} would change the non-square shape {image.shape}")
    axes = tuple(axis for axis, on in enumerate(flips) if on)
    out = []
    for a in (image, mask):
        if axes:
            a = np.flip(a, axis=axes)
        out.append(np.ascontiguousarray(np.rot90(a, k)))
    return out[0], out[1]


def gray_values(image: np.ndarray, gamma: float = 1.0, contrast: float = 1.0,
                brightness: float = 0.0) -> np.ndarray:
    """Gray-value transform of a ``(Y, X)`` float image: gamma, then contrast, then brightness.

    - gamma: ``u = clip((image - min) / (max - min), 0, 1)``, then ``min + (max - min) * u**gamma``
      (keeps the range and the order of gray values);
    - contrast: scales deviations from the mean by ``contrast``;
    - brightness: adds ``brightness``.

    Parameters
    ----------
    image : (Y, X) float image.
    gamma : exponent > 0; 1 = off.
    contrast : factor; 1 = off.
    brightness : offset; 0 = off.

    Returns
    -------
    (Y, X) float32, a new array.
    """
    out = np.array(image, dtype=np.float32)
    if gamma != 1.0:
        lo, hi = float(out.min()), float(out.max())
        if hi > lo:
            u = np.clip((out - lo) / (hi - lo), 0.0, 1.0)
            out = (lo + (hi - lo) * np.power(u, np.float32(gamma))).astype(np.float32)
    if contrast != 1.0:
        mean = np.float32(out.mean())
        out = (out - mean) * np.float32(contrast) + mean
    if brightness != 0.0:
        out += np.float32(brightness)
    return out


def augment_pair(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, *,
                 elastic_points: int, elastic_sigma: float, flip: bool, rotate90: bool,
                 rotate_deg: float, brightness: float, contrast: float,
                 gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """One random augmentation of an image and its instance mask (paper §3.1).

    Geometry (image and mask alike): elastic deformation on an ``elastic_points`` grid with
    N(0, ``elastic_sigma``) px node displacements and rotation by U(±``rotate_deg``) degrees,
    merged into one resampling (:func:`sampling_coords`,
    :func:`warp`); then random vertical/horizontal flips (``flip``) and a rotation by
    k x 90° (``rotate90``; k uniform in 0..3 for square images, in {0, 2} otherwise).
    Gray values (image only, :func:`gray_values`): gamma exp(U(±``gamma``)) on the min-max
    rescaled image, contrast factor U(1 ± ``contrast``) around the mean, brightness offset
    U(±``brightness``). Each part is off when its parameter is 0 / False; with all off the
    output equals the input.

    The draws from ``rng`` do not depend on which parts are on (the elastic nodes come last),
    so the same seed gives byte-identical output and switching one part off leaves the random
    values of the others unchanged.

    Parameters
    ----------
    image : (Y, X) float image, percentile-normalised (~[0, 1]).
    mask : (Y, X) integer instance labels (uint16 in the pipeline).
    rng : the only source of randomness.

    Returns
    -------
    image : (Y, X) float32.
    mask : (Y, X) with the dtype of ``mask``; its values are a subset of the input ids.
    """
    _check(image.ndim == 2, "image", f"must be 2-D (Y, X); got shape {image.shape}")
    _check(mask.shape == image.shape, "mask",
           f"shape {mask.shape} differs from the image shape {image.shape}")
    _check(np.issubdtype(mask.dtype, np.integer), "mask",
           f"must hold integer labels; got {mask.dtype}")

    flips = rng.integers(0, 2, size=2).astype(bool)
    k = int(rng.integers(0, 4))
    u = rng.uniform(-1.0, 1.0, size=6)  # u[1:3] drew the removed shift: seeds keep their draws
    if not flip:
        flips[:] = False
    if not rotate90:
        k = 0
    elif image.shape[0] != image.shape[1]:
        k -= k % 2

    out_image = np.array(image, dtype=np.float32)
    out_mask = np.array(mask)
    if elastic_sigma > 0 or rotate_deg > 0:
        field = (elastic_field(image.shape, elastic_points, elastic_sigma, rng)
                 if elastic_sigma > 0 else None)
        coords = sampling_coords(image.shape, field, rotate_deg * u[0])
        out_image, out_mask = warp(out_image, out_mask, coords)
    if flips.any() or k:
        out_image, out_mask = flip_rot90(out_image, out_mask, (bool(flips[0]), bool(flips[1])), k)
    out_image = gray_values(out_image, gamma=float(np.exp(gamma * u[3])),
                            contrast=1.0 + contrast * u[4], brightness=brightness * u[5])
    return out_image, out_mask
