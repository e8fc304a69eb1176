"""Colour spaces: Rec. 601 luma and full-range YCbCr (the JPEG / Pillow convention).

colorcli works in YCbCr because its Y is exactly the luma that Pillow's
``convert('L')`` computes, so the luminance of every output can equal its input's.
Units: Y in 0..255, Cb and Cr centred on 0 in -128..128, RGB in 0..255.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported only where used: colorize composes its output with numpy alone
    import torch

# ITU-R BT.601 full range, as in JPEG/JFIF and Pillow's "YCbCr" mode.
_KR, _KG, _KB = 0.299, 0.587, 0.114
# Pillow's fixed-point luma weights (they sum to 65536), see libImaging/Convert.c.
_L_R, _L_G, _L_B = 19595, 38470, 7471


def luma_u8(rgb: torch.Tensor) -> torch.Tensor:
    """8-bit Rec. 601 luma of 8-bit RGB, bit-exact with Pillow's ``convert('L')``.

    rgb: (B, 3, H, W) uint8. Returns (B, 1, H, W) uint8.
    """
    import torch

    c = rgb.to(torch.int32)
    y = (c[:, 0:1] * _L_R + c[:, 1:2] * _L_G + c[:, 2:3] * _L_B + 0x8000) >> 16
    return y.to(torch.uint8)


def rgb_to_cbcr(rgb: torch.Tensor) -> torch.Tensor:
    """Chrominance of RGB. rgb: (B, 3, H, W) float in 0..255 -> (B, 2, H, W) in -128..128."""
    import torch

    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    cb = (b - (_KR * r + _KG * g + _KB * b)) / (2 * (1 - _KB))
    cr = (r - (_KR * r + _KG * g + _KB * b)) / (2 * (1 - _KR))
    return torch.cat([cb, cr], dim=1)  # (B, 2, H, W)


def ycbcr_to_rgb(y: torch.Tensor, cbcr: torch.Tensor) -> torch.Tensor:
    """RGB from luma and chrominance. y: (B, 1, H, W) 0..255, cbcr: (B, 2, H, W) -> (B, 3, H, W) float.

    The result is not clipped: values outside 0..255 mean the colour is out of gamut.
    """
    import torch

    cb, cr = cbcr[:, 0:1], cbcr[:, 1:2]
    r = y + 2 * (1 - _KR) * cr
    b = y + 2 * (1 - _KB) * cb
    g = (y - _KR * r - _KB * b) / _KG
    return torch.cat([r, g, b], dim=1)  # (B, 3, H, W)


def ycbcr_planes_to_rgb(y: np.ndarray, cbcr: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``ycbcr_to_rgb`` of one image's planes in numpy, written into ``out``: y (H, W) 0..255 and
    cbcr (2, H, W) -128..128, float32 -> out (3, H, W) float32, 0..255 where in gamut, unclipped.

    The same operations in the same order and precision as ``ycbcr_to_rgb`` (so the same bits),
    without its temporaries and concatenation: a full-resolution photo goes through here band by
    band, and colorize composes it without torch.
    """
    cb, cr = cbcr[0], cbcr[1]
    r, g, b = out[0], out[1], out[2]
    np.multiply(cr, 2 * (1 - _KR), out=r)
    r += y  # y + c * cr: addition is exact either way round
    np.multiply(cb, 2 * (1 - _KB), out=b)
    b += y
    np.multiply(r, _KR, out=g)  # (y - KR * r - KB * b) / KG, term by term in float32
    np.subtract(y, g, out=g)
    g -= b * np.float32(_KB)
    g /= np.float32(_KG)
    return out


def ycbcr_pixels_to_rgb_u8(y: np.ndarray, cbcr: np.ndarray) -> np.ndarray:
    """``ycbcr_to_rgb_u8`` of a list of pixels in numpy: y (n,) 0..255 and cbcr (2, n) -128..128,
    float32 -> (3, n) float32 whole numbers in 0..255, gamut-fitted as ``fit_to_gamut`` does, then rounded.

    For the few out-of-gamut pixels of a full-resolution band; the same float32 operations as the
    torch functions, so the same bits.
    """
    d = ycbcr_planes_to_rgb(np.zeros_like(y), cbcr, np.empty((3, *y.shape), np.float32))  # (3, n) offsets from gray
    room = np.where(d > 0, np.float32(255) - y, y)  # distance to the gamut wall each offset heads for
    t = np.minimum((room / np.maximum(np.abs(d), np.float32(1e-6))).min(0), np.float32(1))  # (n,)
    rgb = ycbcr_planes_to_rgb(y, cbcr * t, d)  # (3, n), in gamut to float rounding
    return np.clip(np.rint(rgb, out=rgb), 0, 255, out=rgb)


def fit_to_gamut(y: torch.Tensor, cbcr: torch.Tensor) -> torch.Tensor:
    """Shrink each pixel's chrominance just enough that its RGB lies in 0..255.

    Plain clipping of out-of-gamut RGB changes the pixel's luma; scaling the
    chrominance toward gray keeps Y exact. y: (B, 1, H, W), cbcr: (B, 2, H, W).
    """
    import torch

    d = ycbcr_to_rgb(torch.zeros_like(y), cbcr)  # (B, 3, H, W) RGB offsets from gray
    room = torch.where(d > 0, 255.0 - y, y)  # distance to the gamut wall each offset heads for
    t = (room / d.abs().clamp(min=1e-6)).amin(1, keepdim=True).clamp(max=1.0)  # (B, 1, H, W)
    return cbcr * t


def ycbcr_to_rgb_u8(y: torch.Tensor, cbcr: torch.Tensor) -> torch.Tensor:
    """8-bit RGB (B, 3, H, W) whose Rec. 601 luma is y (to rounding): gamut-fitted, then rounded."""
    return to_u8(ycbcr_to_rgb(y, fit_to_gamut(y, cbcr)))


def to_u8(x: torch.Tensor) -> torch.Tensor:
    """Round and clip a 0..255 float tensor to uint8."""
    import torch

    return x.round().clamp_(0, 255).to(torch.uint8)


def gray_to_rgb_u8(y: torch.Tensor) -> torch.Tensor:
    """The gray copy: (B, 1, H, W) uint8 luma replicated to (B, 3, H, W) uint8."""
    return y.expand(-1, 3, -1, -1).contiguous()
