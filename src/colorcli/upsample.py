"""Colour at full resolution: working-scale chrominance enlarged to the photo's size along its
own luma's edges (a fast guided filter, He & Sun 2015) and joined with that luma, band by
band in floating point, so the output's luminance is the input's and a 12 MP photo holds
one band of floats at a time. ``tiling.py`` makes the working-scale chrominance.

Pure numpy (and Pillow): colorize runs its model without torch, whose import alone costs
more than this whole stage, so nothing here may import it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from colorcli.color import ycbcr_pixels_to_rgb_u8, ycbcr_planes_to_rgb

# Full-resolution colour is composed in bands of at most this many pixels and rows.
BAND_PIXELS = 1 << 20
BAND_ROWS = 64


def _box_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)-square window, edges replicated: (C, h, w) float32 -> (C, h, w) float32.

    The window is summed in row-major order in float32 and then divided by its area, as
    torch's avg_pool2d does on the CPU, so the planes keep the bits of the torch version.
    The planes are at working scale (a few thousand pixels): the (2r+1)^2 slices cost nothing.
    """
    h, w = x.shape[1:]
    padded = np.pad(x, ((0, 0), (radius, radius), (radius, radius)), mode="edge")  # (C, h + 2r, w + 2r)
    total = np.zeros_like(x)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            total += padded[:, dy : dy + h, dx : dx + w]
    total /= np.float32((2 * radius + 1) ** 2)
    return total


def _box_range(x: np.ndarray, radius: int) -> np.ndarray:
    """Minimum and maximum over a (2r+1)-square window, edges replicated: (C, h, w) -> (2C, h, w), minima first.

    Separable (rows, then columns): extremes, unlike sums, are the same in any order.
    """
    h, w = x.shape[1:]
    padded = np.pad(x, ((0, 0), (radius, radius), (radius, radius)), mode="edge")  # (C, h + 2r, w + 2r)
    peaks = []
    for extreme in (np.minimum, np.maximum):
        across = padded[:, :, :w].copy()  # (C, h + 2r, w): extreme over each row's window
        for dx in range(1, 2 * radius + 1):
            extreme(across, padded[:, :, dx : dx + w], out=across)
        down = across[:, :h].copy()  # (C, h, w): then over each column's window
        for dy in range(1, 2 * radius + 1):
            extreme(down, across[:, dy : dy + h], out=down)
        peaks.append(down)
    return np.concatenate(peaks)  # (2C, h, w)


def guided_planes(guide: np.ndarray, chroma: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """What the guided upsampling needs at working scale (a fast guided filter, He & Sun 2015).

    guide: (h, w) uint8 working-scale luma; chroma: (2, h, w) float32 in -128..128;
    radius: window radius in working-scale pixels (>= 0); eps: regulariser in squared
    luma units of 0..1. Returns (8, h, w) float32: per channel (Cb, Cr) the slope a
    (chroma units per unit of luma in 0..1) and offset b of the local fit
    chroma ~ a * luma + b, averaged over the windows covering the pixel, then the
    lowest and highest chroma predicted within a window, which bound the result:
    a thin bright line beside an edge must not take the colour of the far side.
    """
    chroma = np.asarray(chroma, dtype=np.float32)
    luma = (guide.astype(np.float32) / 255)[None]  # (1, h, w)
    mean_l, mean_c = _box_mean(luma, radius), _box_mean(chroma, radius)
    cov = _box_mean(luma * chroma, radius) - mean_l * mean_c  # (2, h, w)
    var = np.maximum(_box_mean(luma * luma, radius) - mean_l * mean_l, 0)  # (1, h, w)
    slope = cov / (var + np.float32(eps))  # (2, h, w)
    offset = mean_c - slope * mean_l
    fit = _box_mean(np.concatenate([slope, offset]), radius)  # (4, h, w)
    return np.concatenate([fit, _box_range(chroma, radius)])  # (8, h, w)


def _linear_taps(out_len: int, in_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of bilinear resampling along one axis (pixel centres aligned).

    Output pixel i reads (1 - w[i]) * src[lo[i]] + w[i] * src[hi[i]], as
    torch's ``interpolate(mode="bilinear", align_corners=False)`` does. Returns
    lo, hi (int64) and w (float32), each (out_len,); positions in float64 so
    that a 50 MP photo's taps are exact.
    """
    pos = np.clip((np.arange(out_len, dtype=np.float64) + 0.5) * (in_len / out_len) - 0.5, 0, in_len - 1)
    lo = np.floor(pos).astype(np.int64)
    return lo, np.minimum(lo + 1, in_len - 1), (pos - lo).astype(np.float32)


def _lerp_taps(lo: np.ndarray, hi: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The taps as (near, far, t): output i is src[near[i]] + t[i] * (src[far[i]] - src[near[i]]).

    Near is the closer source and t (float64) at most 0.5, as in torch.lerp (start + w * (end - start)
    below w = 0.5, end - (end - start) * (1 - w) from it), and exact at w = 0 and w = 1. Computed
    in float64, t * step is exact and the sum rounded once, as torch's fused multiply-add does on
    the CPU: the enlarged planes keep the bits of the torch version.
    """
    small = weight < 0.5
    near, far = np.where(small, lo, hi), np.where(small, hi, lo)
    return near, far, np.where(small, weight, np.float32(1) - weight).astype(np.float64)


def _taps_matrix(lo: np.ndarray, hi: np.ndarray, weight: np.ndarray, first: int, count: int) -> np.ndarray:
    """The taps of some output pixels as a (outputs, count) float32 matrix over sources first..first+count-1.

    Enlarging by a matrix product reads the few source rows once, where
    gathering them row by row moves several times the memory.
    """
    matrix = np.zeros((len(lo), count), dtype=np.float32)
    out = np.arange(len(lo))
    np.add.at(matrix, (out, lo - first), 1 - weight)  # at the last row lo == hi: the weights add up to 1
    np.add.at(matrix, (out, hi - first), weight)
    return matrix  # (outputs, count)


def _join_in_bands(
    gray: Image.Image, chroma_rows: Callable[[slice, np.ndarray], np.ndarray], band_pixels: int
) -> Image.Image:
    """RGB whose luma is ``gray`` (8-bit, mode "L"), built band by band so a huge photo holds one band of floats.

    A band is at most ``band_pixels`` pixels and ``BAND_ROWS`` rows (a narrow
    photo would otherwise get bands thousands of rows tall).
    chroma_rows(rows, luma) gives the (2, rows, W) float32 chroma, -128..128, of
    those rows from their (rows, W) luma in 0..1. RGB is computed in floating
    point, not with Pillow's fixed-point YCbCr conversion, which truncates: it
    leaves 4 in 10 pixels of an ordinary photo one level darker than their Y.
    """
    y_all = np.asarray(gray)  # (H, W) uint8
    height, width = y_all.shape
    # Planar, joined by Image.merge: writing (H, W, 3) pixels from float planes, and Pillow's
    # unpacking of them, take a third of the whole stage; contiguous planes are cheap to write.
    out = np.empty((3, height, width), dtype=np.uint8)
    band = max(1, min(band_pixels // max(width, 1), BAND_ROWS))
    y_float = np.empty((band, width), dtype=np.float32)  # reused by every band, as is rgb
    rgb = np.empty((3, band, width), dtype=np.float32)
    for top in range(0, height, band):
        rows = slice(top, min(top + band, height))
        n = rows.stop - top
        y = y_float[:n]  # (rows, W) in 0..255
        np.copyto(y, y_all[rows], casting="unsafe")
        _ycbcr_band_to_rgb(y, chroma_rows(rows, y / 255), rgb[:, :n], out[:, rows])
    return Image.merge("RGB", [Image.fromarray(plane) for plane in out])


def compose_guided(gray: Image.Image, planes: np.ndarray, band_pixels: int = BAND_PIXELS) -> Image.Image:
    """Full-resolution RGB whose luma is ``gray`` (8-bit, mode "L") and whose chroma follows its edges.

    planes: (8, h, w) float32 from ``guided_planes`` at working scale. They are
    enlarged bilinearly to the photo's size a band of rows at a time (only the
    working-scale rows a band reads), and each pixel's chroma is a * luma + b,
    kept within the enlarged local range.
    """
    height, width = gray.height, gray.width
    rows_lo, rows_hi, row_w = _linear_taps(height, planes.shape[1])
    near, far, t = _lerp_taps(*_linear_taps(width, planes.shape[2]))
    by_row = np.ascontiguousarray(np.asarray(planes, dtype=np.float32).transpose(1, 0, 2))  # (h, 8, w)

    def chroma_rows(rows: slice, luma: np.ndarray) -> np.ndarray:
        lo, hi = rows_lo[rows], rows_hi[rows]
        first, last = int(lo[0]), int(hi[-1])  # the working-scale rows this band reads
        source = by_row[first : last + 1]  # (k, 8, w)
        start = source.take(near, axis=2)  # (k, 8, W): columns enlarged first, at the few source rows
        step = source.take(far, axis=2)
        step -= start
        wide = (step * t + start).astype(np.float32)  # t float64: the product exact, the sum rounded once
        taps = _taps_matrix(lo, hi, row_w[rows], first, len(source))  # (rows, k)
        up = (taps @ wide.reshape(len(source), -1)).reshape(len(lo), 8, width)  # (rows, 8, W)
        fitted = up[:, 0:2]  # (rows, 2, W), computed in place of the slopes
        fitted *= luma[:, None]
        fitted += up[:, 2:4]
        np.maximum(fitted, up[:, 4:6], out=fitted)
        np.minimum(fitted, up[:, 6:8], out=fitted)
        return fitted.transpose(1, 0, 2)  # (2, rows, W)

    return _join_in_bands(gray, chroma_rows, band_pixels)


def compose_chroma(gray: Image.Image, chroma: np.ndarray, band_pixels: int = BAND_PIXELS) -> Image.Image:
    """RGB whose luma is ``gray`` (8-bit, mode "L") and whose chroma is ``chroma`` (2, H, W) float32, -128..128."""
    return _join_in_bands(gray, lambda rows, _luma: chroma[:, rows], band_pixels)


def guide_radius(enlargement: float, radius: int) -> int:
    """The guide's radius for an enlargement (full size / working size, >= 1): in steps, from 0 at 1:1.

    int(radius * (enlargement - 1)), at most ``radius``: for radius 2, 0 below
    1.5 times, 1 up to twice, 2 from twice. Near 1:1 there are no edges to
    restore and the filter would only smooth (and pale) the colour.
    """
    return max(0, min(radius, int(radius * (enlargement - 1))))


def _ycbcr_band_to_rgb(y: np.ndarray, chroma: np.ndarray, rgb: np.ndarray, out: np.ndarray) -> None:
    """Write into ``out`` (3, rows, w) uint8 the RGB of luma ``y`` (rows, w), float32 0..255, and
    chroma (2, rows, w), float -128..128, using ``rgb`` (3, rows, w) float32 as scratch.

    Exact in floating point; out-of-gamut pixels get their chrominance shrunk
    toward gray until they fit, since clipping RGB would change their luma.
    """
    ycbcr_planes_to_rgb(y, chroma, rgb)
    np.rint(rgb, out=rgb)  # (3, rows, w), unclipped
    low = np.minimum(np.minimum(rgb[0], rgb[1]), rgb[2])  # (rows, w): one plane to test, not three
    high = np.maximum(np.maximum(rgb[0], rgb[1]), rgb[2])
    if low.min() < 0 or high.max() > 255:  # some pixels out of gamut: fit just those
        at = np.nonzero((low < 0) | (high > 255))  # (k,) row and column indices
        rgb[(slice(None), *at)] = ycbcr_pixels_to_rgb_u8(y[at], np.asarray(chroma[(slice(None), *at)], np.float32))
    np.copyto(out, rgb, casting="unsafe")  # in-range whole numbers: exact
