"""Image-quality figures on 8-bit RGB batches: PSNR, SSIM and colorfulness."""

from __future__ import annotations

import torch

PSNR_CAP_DB = 100.0
# Below this colorfulness an image counts as colourless: a share of its colour means nothing.
COLOURLESS = 1e-3


def psnr_of_mse(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of mean squared errors on the 0..255 scale; an exact copy (MSE 0) scores 100 dB."""
    mse = mse.double()
    return torch.where(mse > 0, 10 * torch.log10(255.0**2 / mse.clamp(min=1e-300)), PSNR_CAP_DB)


def psnr_per_image(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image; uint8 (B, 3, H, W) inputs -> (B,). Identical images give 100 dB."""
    return psnr_of_mse(mse_per_image(pred, truth)).float()


def colour_share(colourfulness: float, truth_colourfulness: float) -> float | None:
    """Colorfulness as a share of the truth's; None when the truth has no colour to share."""
    return colourfulness / truth_colourfulness if truth_colourfulness > COLOURLESS else None


def share_or_nan(share: float | None) -> float:
    """A colour share (or any figure that may be missing) for printing in columns: NaN where there is none."""
    return float("nan") if share is None else share


def mse_per_image(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Mean squared error on the 0..255 scale of each image; (B, 3, H, W) -> (B,)."""
    return (pred.float() - truth.float()).square().flatten(1).mean(1)


def ssim_per_image(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of each image over its RGB channels (Gaussian window 11, sigma 1.5); (B,) in -1..1."""
    from kornia.metrics import ssim

    side = min(11, *pred.shape[-2:])
    window = side if side % 2 else side - 1  # odd, and no larger than the image
    m = ssim(pred.float() / 255.0, truth.float() / 255.0, window_size=window, max_val=1.0)  # (B, 3, H, W)
    return m.flatten(1).mean(1)


def colorfulness(rgb: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Hasler & Suesstrunk (2003) colorfulness of each image; uint8 or 0..255 (B, 3, H, W) -> (B,).

    M = sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2), with rg = R - G and
    yb = (R + G) / 2 - B. A gray image scores 0; vivid photos score about 50-100.
    eps (in squared levels) goes under both square roots: training needs it, since the
    gradient of sqrt at an exactly gray image is infinite; 0 gives the exact figure.
    """
    x = rgb.float()
    rg = (x[:, 0] - x[:, 1]).flatten(1)  # (B, H*W)
    yb = (0.5 * (x[:, 0] + x[:, 1]) - x[:, 2]).flatten(1)
    std = (rg.var(1, unbiased=False) + yb.var(1, unbiased=False) + eps).sqrt()
    mean = (rg.mean(1).square() + yb.mean(1).square() + eps).sqrt()
    return std + 0.3 * mean
