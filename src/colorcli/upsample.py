"""Colour at full resolution: working-scale chrominance enlarged to the photo's size along its
own luma's edges (a fast guided filter, He & Sun 2015) and joined with that luma, band by
band in floating point, so the output's luminance is the input's and a 12 MP photo holds
one band of floats at a time. ``tiling.py`` makes the working-scale chrominance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch

# Full-resolution colour is composed in bands of at most this many pixels and rows.
BAND_PIXELS = 1 << 20
BAND_ROWS = 64


def _box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a (2r+1)-square window, edges replicated: (C, h, w) -> (C, h, w)."""
    import torch.nn.functional as F

    padded = F.pad(x[None], (radius,) * 4, mode="replicate")  # (1, C, h + 2r, w + 2r)
    return F.avg_pool2d(padded, 2 * radius + 1, stride=1)[0]  # (C, h, w)


def _box_range(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Minimum and maximum over a (2r+1)-square window: (C, h, w) -> (2C, h, w), minima first."""
    import torch
    import torch.nn.functional as F

    padded = F.pad(torch.cat([-x, x])[None], (radius,) * 4, mode="replicate")  # (1, 2C, h + 2r, w + 2r)
    peaks = F.max_pool2d(padded, 2 * radius + 1, stride=1)[0]  # (2C, h, w): -min, max
    c = x.shape[0]
    return torch.cat([-peaks[:c], peaks[c:]])  # (2C, h, w)


def guided_planes(guide: np.ndarray, chroma: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """What the guided upsampling needs at working scale (a fast guided filter, He & Sun 2015).

    guide: (h, w) uint8 working-scale luma; chroma: (2, h, w) in -128..128;
    radius: window radius in working-scale pixels; eps: regulariser in squared
    luma units of 0..1. Returns (8, h, w) float: per channel (Cb, Cr) the slope a
    (chroma units per unit of luma in 0..1) and offset b of the local fit
    chroma ~ a * luma + b, averaged over the windows covering the pixel, then the
    lowest and highest chroma predicted within a window, which bound the result:
    a thin bright line beside an edge must not take the colour of the far side.
    """
    import torch

    luma = torch.from_numpy(guide.astype(np.float32) / 255)[None]  # (1, h, w)
    mean_l, mean_c = _box_mean(luma, radius), _box_mean(chroma, radius)
    cov = _box_mean(luma * chroma, radius) - mean_l * mean_c  # (2, h, w)
    var = (_box_mean(luma * luma, radius) - mean_l * mean_l).clamp(min=0)  # (1, h, w)
    slope = cov / (var + eps)  # (2, h, w)
    offset = mean_c - slope * mean_l
    fit = _box_mean(torch.cat([slope, offset]), radius)  # (4, h, w)
    return torch.cat([fit, _box_range(chroma, radius)])  # (8, h, w)


def _linear_taps(out_len: int, in_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices and weights of bilinear resampling along one axis (pixel centres aligned).

    Output pixel i reads (1 - w[i]) * src[lo[i]] + w[i] * src[hi[i]], as
    torch's ``interpolate(mode="bilinear", align_corners=False)`` does. Returns
    lo, hi (int64) and w (float32), each (out_len,) tensors.
    """
    import torch

    pos = ((torch.arange(out_len, dtype=torch.float64) + 0.5) * (in_len / out_len) - 0.5).clamp(0, in_len - 1)
    lo = pos.floor().long()
    return lo, (lo + 1).clamp(max=in_len - 1), (pos - lo).float()


def _taps_matrix(lo: torch.Tensor, hi: torch.Tensor, weight: torch.Tensor, first: int, count: int) -> torch.Tensor:
    """The taps of some output pixels as a (outputs, count) matrix over sources first..first+count-1.

    Enlarging by a matrix product reads the few source rows once, where
    gathering them row by row moves several times the memory.
    """
    import torch

    matrix = torch.zeros(len(lo), count)
    out = torch.arange(len(lo))
    matrix.index_put_((out, lo - first), 1 - weight, accumulate=True)
    matrix.index_put_((out, hi - first), weight, accumulate=True)
    return matrix  # (outputs, count)


def _join_in_bands(
    gray: Image.Image, chroma_rows: Callable[[slice, torch.Tensor], torch.Tensor], band_pixels: int
) -> Image.Image:
    """RGB whose luma is ``gray`` (8-bit, mode "L"), built band by band so a huge photo holds one band of floats.

    A band is at most ``band_pixels`` pixels and ``BAND_ROWS`` rows (a narrow
    photo would otherwise get bands thousands of rows tall).
    chroma_rows(rows, luma) gives the (2, rows, W) chroma, -128..128, of those
    rows from their (rows, W) luma in 0..1. RGB is computed in floating point,
    not with Pillow's fixed-point YCbCr conversion, which truncates: it leaves 4
    in 10 pixels of an ordinary photo one level darker than their Y.
    """
    import torch

    y_all = np.asarray(gray)  # (H, W) uint8
    height, width = y_all.shape
    out = np.empty((height, width, 3), dtype=np.uint8)
    band = max(1, min(band_pixels // max(width, 1), BAND_ROWS))
    for top in range(0, height, band):
        rows = slice(top, min(top + band, height))
        y = y_all[rows]  # (rows, W)
        y_float = torch.from_numpy(y.astype(np.float32))  # (rows, W) in 0..255
        _ycbcr_band_to_rgb(y_float, chroma_rows(rows, y_float / 255), out[rows])
    return Image.fromarray(out, "RGB")


def compose_guided(gray: Image.Image, planes: torch.Tensor, band_pixels: int = BAND_PIXELS) -> Image.Image:
    """Full-resolution RGB whose luma is ``gray`` (8-bit, mode "L") and whose chroma follows its edges.

    planes: (8, h, w) from ``guided_planes`` at working scale. They are enlarged
    bilinearly to the photo's size a band of rows at a time (only the
    working-scale rows a band reads), and each pixel's chroma is a * luma + b,
    kept within the enlarged local range.
    """
    import torch

    height, width = gray.height, gray.width
    rows_lo, rows_hi, row_w = _linear_taps(height, planes.shape[1])
    cols_lo, cols_hi, col_w = _linear_taps(width, planes.shape[2])
    by_row = planes.float().permute(1, 0, 2).contiguous()  # (h, 8, w)

    def chroma_rows(rows: slice, luma: torch.Tensor) -> torch.Tensor:
        lo, hi = rows_lo[rows], rows_hi[rows]
        first, last = int(lo[0]), int(hi[-1])  # the working-scale rows this band reads
        near = by_row[first : last + 1]  # (k, 8, w)
        wide = torch.lerp(near.index_select(2, cols_lo), near.index_select(2, cols_hi), col_w)  # (k, 8, W)
        taps = _taps_matrix(lo, hi, row_w[rows], first, len(near))  # (rows, k)
        up = (taps @ wide.view(len(near), -1)).view(len(lo), 8, width)  # (rows, 8, W)
        fitted = torch.addcmul(up[:, 2:4], up[:, 0:2], luma[:, None])  # (rows, 2, W)
        bounded = torch.minimum(torch.maximum(fitted, up[:, 4:6]), up[:, 6:8])  # (rows, 2, W)
        return bounded.permute(1, 0, 2)  # (2, rows, W)

    return _join_in_bands(gray, chroma_rows, band_pixels)


def compose_chroma(gray: Image.Image, chroma: torch.Tensor, band_pixels: int = BAND_PIXELS) -> Image.Image:
    """RGB whose luma is ``gray`` (8-bit, mode "L") and whose chroma is ``chroma`` (2, H, W), -128..128."""
    return _join_in_bands(gray, lambda rows, _luma: chroma[:, rows], band_pixels)


def guide_radius(enlargement: float, radius: int) -> int:
    """The guide's radius for an enlargement (full size / working size, >= 1): in steps, from 0 at 1:1.

    int(radius * (enlargement - 1)), at most ``radius``: for radius 2, 0 below
    1.5 times, 1 up to twice, 2 from twice. Near 1:1 there are no edges to
    restore and the filter would only smooth (and pale) the colour.
    """
    return max(0, min(radius, int(radius * (enlargement - 1))))


def _ycbcr_band_to_rgb(y: torch.Tensor, chroma: torch.Tensor, out: np.ndarray) -> None:
    """Write into ``out`` (rows, w, 3) uint8 the RGB of luma ``y`` (rows, w), float 0..255, and
    chroma (2, rows, w), float -128..128.

    Exact in floating point; out-of-gamut pixels get their chrominance shrunk
    toward gray until they fit, since clipping RGB would change their luma.
    """
    import torch

    from colorcli.color import ycbcr_planes_to_rgb, ycbcr_to_rgb_u8

    c = chroma.float()  # (2, rows, w)
    rgb = ycbcr_planes_to_rgb(y, c, torch.empty((3, *y.shape))).round_()  # (3, rows, w), unclipped
    lowest, highest = torch.aminmax(rgb)
    if lowest < 0 or highest > 255:  # some pixels out of gamut: fit just those
        outside = ((rgb < 0) | (rgb > 255)).any(0)  # (rows, w)
        ys, cs = y[outside], c[:, outside]  # (k,), (2, k)
        # the pixels outside as a (1, C, n, 1) image for the converter, back to (3, n)
        rgb[:, outside] = ycbcr_to_rgb_u8(ys.view(1, 1, -1, 1), cs.view(1, 2, -1, 1))[0, :, :, 0].float()
    torch.from_numpy(out).copy_(rgb.permute(1, 2, 0))  # (rows, w, 3); in-range whole numbers: exact
