"""Pixel-wise loss weights of the U-Net paper (Ronneberger et al. 2015, §3, Eq. 2).

Arrays are ``(Y, X)``, Y the row axis; ``labels`` is an integer instance mask with
0 = background and every other value one cell.

:func:`weight_map` is exact wherever the border term is at least ``TOL`` and costs
about one distance transform. That term only needs d1 < T/2 and d2 < T - 1, with
``T = cutoff(w0, sigma)``, so a separable "two nearest distinct cells" transform of
bounded reach does, as whole-array integer operations on blocks of rows:

1. Row scans: per pixel, the nearest cell pixel of its row and the nearest pixel of
   another cell, from windowed running minima of ``distance << bits | label`` keys.
2. Column offsets for d1: the minimum over ``|dy| < T/2`` of ``dy² + dx²`` keys,
   which also carries the nearest label L1.
3. Column offsets for d2: the same over ``|dy| < T - 1``, taking in each row its
   nearest cell unless that is L1, else its second one. Two distinct cells per row
   suffice: a row holding two cells nearer than the wanted one holds a nearer cell
   other than L1.

Rows are padded with empty pixels so that the scans' flat shifts stay in their row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from unetseg.errors import InputError

TOL = 1e-4  # border-term values below this are set to 0
_BLOCK = 1 << 19  # pixels per block of rows


def cutoff(w0: float, sigma: float, tol: float = TOL) -> float:
    """Distance sum T with ``w0 exp(-T² / (2 sigma²)) = tol``; 0 if ``w0 <= tol``."""
    return sigma * math.sqrt(2.0 * math.log(w0 / tol)) if w0 > tol else 0.0


def class_weights(labels: np.ndarray, balance: bool = True) -> np.ndarray:
    """Class-balancing map w_c of paper Eq. 2.

    With ``balance`` each of the two classes (background, cell) gets
    ``n_pixels / (2 * n_class)``: the rarer class weighs more and the image mean of
    w_c is 1. If a class is absent, or ``balance`` is false, w_c = 1 everywhere.

    Parameters
    ----------
    labels : (Y, X) integer instance mask, 0 = background.

    Returns
    -------
    (Y, X) float32.
    """
    labels = _check_labels(labels)
    w_fg, w_bg = _class_values(labels.size, int(np.count_nonzero(labels)), balance)
    return np.where(labels > 0, np.float32(w_fg), np.float32(w_bg))


def _class_values(n: int, n_fg: int, balance: bool) -> tuple[float, float]:
    if not balance or n_fg in (0, n):
        return 1.0, 1.0
    return n / (2.0 * n_fg), n / (2.0 * (n - n_fg))


def weight_map(labels: np.ndarray, w0: float = 10.0, sigma: float = 5.0,
               balance: bool = True) -> np.ndarray:
    """Weight map of paper Eq. 2: ``w = w_c + w0 exp(-(d1 + d2)² / (2 sigma²))``.

    Parameters
    ----------
    labels : (Y, X) integer instance mask (usually uint16), 0 = background, at most
        65535 distinct cells.
    w0, sigma : border weight and width in pixels (paper: 10 and 5).
    balance : class balance w_c as in :func:`class_weights`; otherwise w_c = 1.

    Returns
    -------
    (Y, X) float32. The border term is added on background pixels only; d1 and d2
    are the Euclidean distances between pixel centres to the nearest pixel of the
    nearest and of the second-nearest cell (a pixel next to a cell has d1 = 1).
    It is zero with fewer than two cells and wherever it is below ``TOL``.
    Matches :func:`reference_weight_map` within ``TOL``.
    """
    labels = _check_labels(labels)
    _check_params(w0, sigma)
    n_fg = int(np.count_nonzero(labels))
    w_fg, w_bg = _class_values(labels.size, n_fg, balance)
    t = cutoff(w0, sigma)
    if t <= 2.0 or n_fg == 0:
        return np.where(labels > 0, np.float32(w_fg), np.float32(w_bg))
    return _border_weights(_as_uint16(labels), w0, sigma, t, w_fg, w_bg)


def reference_weight_map(labels: np.ndarray, w0: float = 10.0, sigma: float = 5.0,
                         balance: bool = True) -> np.ndarray:
    """Paper Eq. 2 by its definition: one full-image EDT per cell (slow ground truth).

    Parameters and result as :func:`weight_map`, without the ``TOL`` cutoff.
    """
    labels = _check_labels(labels)
    _check_params(w0, sigma)
    wc = class_weights(labels, balance)
    ids = np.unique(labels[labels > 0])
    if ids.size < 2:
        return wc
    d1 = np.full(labels.shape, np.inf)
    d2 = np.full(labels.shape, np.inf)
    for i in ids:
        d = ndi.distance_transform_edt(labels != i)
        d2 = np.minimum(d2, np.maximum(d1, d))
        d1 = np.minimum(d1, d)
    border = w0 * np.exp(-((d1 + d2) ** 2) / (2.0 * sigma**2))
    return (wc + np.where(labels == 0, border, 0.0)).astype(np.float32)


def separate_touching(labels: np.ndarray) -> np.ndarray:
    """Open a background gap between touching cells (paper Fig. 3c).

    Every cell pixel with an 8-neighbour of a *different* non-zero label is set to 0,
    on both sides of the contact, so the gap is about two pixels wide and no two
    distinct labels stay 8-adjacent. Cells one or two pixels thick may vanish where
    they touch others. Pixels outside the image count as background.

    Parameters
    ----------
    labels : (Y, X) integer instance mask, 0 = background.

    Returns
    -------
    (Y, X) array of the same dtype; its ids are a subset of the input's.
    """
    labels = _check_labels(labels)
    ids = labels if labels.max(initial=0) < 2**53 else _consecutive(labels)  # filters use float
    top = min(int(np.iinfo(ids.dtype).max), 2**53)
    hi = ndi.maximum_filter(ids, size=3, mode="constant", cval=0)
    lo = ndi.minimum_filter(np.where(ids == 0, top, ids), size=3, mode="constant", cval=top)
    out = labels.copy()
    out[(ids > 0) & ((hi != ids) | (lo != ids))] = 0
    return out


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InputError(f"labels: expected a (Y, X) instance mask, got shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise InputError(f"labels: expected an integer instance mask, got dtype {labels.dtype}")
    if labels.dtype.kind == "i" and labels.size and labels.min() < 0:
        raise InputError("labels: negative instance ids are not allowed")
    return labels


def _check_params(w0: float, sigma: float) -> None:
    if not (math.isfinite(w0) and w0 >= 0):
        raise InputError(f"w0: must be a finite number >= 0, got {w0}")
    if not (math.isfinite(sigma) and sigma > 0):
        raise InputError(f"sigma: must be a finite number > 0, got {sigma}")


def _consecutive(labels: np.ndarray) -> np.ndarray:
    """The ids renumbered 1..n in increasing order, 0 kept; int64."""
    ids, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape) + int(ids[0] != 0)


def _as_uint16(labels: np.ndarray) -> np.ndarray:
    if labels.max(initial=0) > 0xFFFF:
        labels = _consecutive(labels)
        if labels.max() > 0xFFFF:
            raise InputError(f"labels: {labels.max()} cells, at most 65535 are supported")
    return labels.astype(np.uint16, copy=False)


@dataclass(frozen=True)
class _Plan:
    """Geometry and integer types of the banded transform for one image width."""

    reach: int  # ceil(T)
    steps: int  # doubling steps of the row scans: window 2**steps > reach
    pad: int  # empty columns before each row: 2**steps
    width: int  # pad + image width
    rows: int  # image rows per block
    sq: type  # squared distances
    key: type  # squared distance << 16 | label
    label: type  # labels in the column passes: uint8 (exact) when all ids are < 256
    scan: type  # row-scan keys: uint16 (8-bit distance, 8-bit label) when both fit

    @property
    def bits(self) -> int:
        """Label bits of the row-scan keys, the lower half."""
        return 4 * np.dtype(self.scan).itemsize

    @staticmethod
    def _steps(reach: int) -> int:
        return max(1, math.ceil(math.log2(reach + 1)))

    @classmethod
    def make(cls, t: float, shape: tuple[int, int], top_label: int) -> _Plan:
        reach = math.ceil(t)
        steps = cls._steps(reach)
        if reach + (2 << steps) >= 0xFFFF:
            raise InputError(f"sigma: a border term reaching {t:.0f} px is too wide")
        width = (1 << steps) + shape[1]
        small = 2 * reach * reach < 0xFFFF
        blocks = max(1, round(shape[0] * width / _BLOCK))
        return cls(reach, steps, 1 << steps, width, max(8, -(-shape[0] // blocks)),
                   np.uint16 if small else np.uint32, np.uint32 if small else np.uint64,
                   np.uint8 if top_label <= 0xFF else np.uint16,
                   np.uint16 if top_label <= 0xFF and reach + (2 << steps) < 0xFF else np.uint32)

    @property
    def near_rows(self) -> int:
        """Row offsets ``|dy| < near_rows`` reach every d1 < t / 2."""
        return math.ceil(self.reach / 2)

    @property
    def far_rows(self) -> int:
        """Row offsets ``|dy| < far_rows`` reach every d2 < t - 1 (background: d1 >= 1)."""
        return self.reach - 1

    def none_scan(self) -> np.integer:
        """Row-scan key of "no cell nearer than reach - 1"."""
        return self.scan((self.reach - 1) << self.bits | ((1 << self.bits) - 1))

    def none_key(self) -> np.integer:
        return self.key((self.reach - 1) ** 2 << 16 | 0xFFFF)


def _border_weights(lab: np.ndarray, w0: float, sigma: float, t: float,
                    w_fg: float, w_bg: float) -> np.ndarray:
    """w_c plus the border term for a (Y, X) uint16 mask, block by block of rows.

    A ring of ``rows + 2 reach`` rows holds the row-scan results around the block.
    """
    y, x = lab.shape
    p = _Plan.make(t, lab.shape, int(lab.max()))
    r = p.reach
    ring_k = np.full((p.rows + 2 * r, x), p.none_key())
    ring_h = np.full((p.rows + 2 * r, x), (r - 1) ** 2, p.sq)
    work = np.empty((8, p.rows, p.width), p.scan)
    work[0, :, :p.pad] = 0
    out = np.empty((y, x), np.float32)
    for a in range(0, min(y, p.rows + r), p.rows):
        b = min(a + p.rows, y, p.rows + r)
        _row_scans(lab[a:b], p, ring_k[r + a:r + b], ring_h[r + a:r + b], work)
    for r0 in range(0, y, p.rows):
        nb = min(p.rows, y - r0)
        d1sq, d2sq = _column_offsets(ring_k[:nb + 2 * r], ring_h[:nb + 2 * r], p)
        _finish(d1sq, d2sq, lab[r0:r0 + nb] > 0, w0, sigma, t, w_fg, w_bg, out[r0:r0 + nb])
        ring_k[:2 * r] = ring_k[nb:nb + 2 * r]
        ring_h[:2 * r] = ring_h[nb:nb + 2 * r]
        ring_k[2 * r:] = p.none_key()
        ring_h[2 * r:] = (r - 1) ** 2
        a, b = min(r0 + nb + r, y), min(r0 + nb + r + p.rows, y)
        if a < b:
            _row_scans(lab[a:b], p, ring_k[2 * r:2 * r + b - a], ring_h[2 * r:2 * r + b - a],
                       work)
    return out


def _row_scans(lab: np.ndarray, p: _Plan, out_key: np.ndarray, out_h2: np.ndarray,
               work: np.ndarray) -> None:
    """Per pixel, the two nearest distinct labels of its row within ``p.reach``.

    ``lab`` is (n, X) uint16; ``work`` (8, >= n, p.width) ``p.scan`` scratch whose first
    plane has zero padding columns. Writes ``out_key = dx² << 16 | (LOW - label)`` of
    the nearest cell pixel, with LOW all ones in ``p.bits`` bits, and ``out_h2 = dx²``
    of the nearest pixel of another cell, both (n, X). A distance of ``p.reach - 1`` or
    more (at most ``p.reach``) stands for none that near, label 0 for no cell.

    Scan keys are ``dx << bits | (LOW - label)``. The running minimum of the keys plus
    ``j << bits`` over the ``2**steps`` pixels ``j`` to the left (right) is the nearest
    cell pixel on that side. A pixel whose nearest label differs from its neighbour's
    starts a run; the running minimum over run starts of the neighbour's key, one pixel
    further, is the nearest pixel of another cell. Keys that the padding picks up from
    the previous row are farther than ``2**steps``, so they never win.
    """
    n = lab.shape[0]
    b, one = p.bits, p.scan(1)
    low, none = p.scan((1 << b) - 1), p.none_scan()
    u, fg, *bufs = (w[:n] for w in work)
    u[:, p.pad:] = lab
    np.sign(u, out=fg)
    found = []
    for left in (True, False):
        first, free, other = bufs.pop(), bufs.pop(), bufs.pop()
        np.subtract(none, u, out=first)
        np.multiply(fg, p.scan((p.reach - 1) << b), out=free)
        first -= free
        first, free = _min_plus(first.ravel(), free.ravel(), p.steps, b, left)
        other = other.ravel()
        prev, here = slice(None, -1), slice(1, None)
        if not left:
            prev, here = here, prev
        start, new = free[here], other[here]
        np.bitwise_xor(first[prev], first[here], out=start)
        start &= low
        np.sign(start, out=start)
        np.subtract(one, start, out=start)
        start *= none
        np.add(first[prev], p.scan(1 << b), out=new)
        np.maximum(new, start, out=new)
        other[0 if left else -1] = none
        other, free = _min_plus(other, free, p.steps, b, left)
        bufs.append(free.reshape(n, p.width))
        found += [first.reshape(n, p.width), other.reshape(n, p.width)]
    left1, left2, right1, right2 = found
    near = np.minimum(left1, right1, out=fg)
    same = np.bitwise_xor(left1, right1, out=bufs[0])
    same &= low
    np.sign(same, out=same)
    same -= one
    second = np.maximum(left1, right1, out=left1)
    second |= same
    np.minimum(second, left2, out=second)
    np.minimum(second, right2, out=second)
    second >>= b
    second *= second
    np.copyto(out_h2, second[:, p.pad:], casting="unsafe")
    dist = np.right_shift(near, b, out=bufs[0]).astype(p.key)
    dist *= dist
    dist <<= 16
    near &= low
    dist |= near
    np.copyto(out_key, dist[:, p.pad:])


def _min_plus(a: np.ndarray, b: np.ndarray, steps: int, bits: int,
              left: bool) -> tuple[np.ndarray, np.ndarray]:
    """Min over the ``2**steps`` elements ``j`` ending (left) or starting at each element
    of flat ``a`` of ``a[j] + (distance << bits)``; ``b`` is scratch. Returns (result,
    the other buffer)."""
    s = 1
    for _ in range(steps):
        step = a.dtype.type(s << bits)
        if left:
            np.add(a[:-s], step, out=b[s:])
            np.minimum(b[s:], a[s:], out=b[s:])
            b[:s] = a[:s]
        else:
            np.add(a[s:], step, out=b[:-s])
            np.minimum(b[:-s], a[:-s], out=b[:-s])
            b[-s:] = a[-s:]
        a, b = b, a
        s *= 2
    return a, b


def _column_offsets(keys: np.ndarray, h2: np.ndarray, p: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """Squared d1 and d2 of the middle rows of the ring (``nb + 2 reach`` rows in, ``nb`` out).

    d1: min over row offsets ``dy`` of ``dy²`` plus the row keys, which also gives the
    nearest label L1. d2: min over ``dy`` of ``dy²`` plus the row candidate: its
    nearest ``dx²`` unless that label is L1, then its second one.
    """
    r = p.reach
    nb = keys.shape[0] - 2 * r
    mid = slice(r, r + nb)
    best = keys[mid].copy()
    tmp = np.empty_like(best)
    for d in range(1, p.near_rows):
        np.minimum(keys[r - d:r - d + nb], keys[r + d:r + d + nb], out=tmp)
        tmp += p.key(d * d << 16)
        np.minimum(best, tmp, out=best)
    low = p.key(np.iinfo(p.label).max)
    label = np.bitwise_and(best, low, out=np.empty(best.shape, p.label), casting="unsafe")
    l1 = np.bitwise_and(keys, low, out=np.empty(keys.shape, p.label), casting="unsafe")
    h1 = np.right_shift(keys, 16, out=np.empty(keys.shape, p.sq), casting="unsafe")
    np.right_shift(best, 16, out=best)
    acc, x, y = (np.empty(label.shape, p.sq) for _ in range(3))
    _candidate(l1[mid], h1[mid], h2[mid], label, acc)
    for d in range(1, p.far_rows):
        _candidate(l1[r - d:r - d + nb], h1[r - d:r - d + nb], h2[r - d:r - d + nb], label, x)
        _candidate(l1[r + d:r + d + nb], h1[r + d:r + d + nb], h2[r + d:r + d + nb], label, y)
        np.minimum(x, y, out=x)
        x += p.sq(d * d)
        np.minimum(acc, x, out=acc)
    return best, acc


def _candidate(l1: np.ndarray, h1: np.ndarray, h2: np.ndarray, label: np.ndarray,
               out: np.ndarray) -> None:
    """``out = h2 if l1 == label else h1``, as ``max(h1, h2 * same)`` since h2 >= h1."""
    np.equal(l1, label, out=out, casting="unsafe")
    out *= h2
    np.maximum(out, h1, out=out)


def _finish(d1sq: np.ndarray, d2sq: np.ndarray, fg: np.ndarray, w0: float, sigma: float,
            t: float, w_fg: float, w_bg: float, out: np.ndarray) -> None:
    """``out = w_fg`` on cells, else ``w_bg + w0 exp(-(d1 + d2)² / (2 sigma²))``, the
    last term 0 where ``d1 + d2 >= t``."""
    s = np.sqrt(d1sq, dtype=np.float32)
    s += np.sqrt(d2sq, dtype=np.float32)
    keep = np.less(s, np.float32(t))
    keep &= ~fg
    np.square(s, out=out)
    out *= np.float32(-0.5 / sigma**2)
    np.exp(out, out=out)
    out *= np.float32(w0)
    out *= keep
    out += np.float32(w_bg)
    if w_fg != w_bg:
        np.copyto(out, np.float32(w_fg), where=fg)
