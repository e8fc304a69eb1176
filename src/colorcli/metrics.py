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
    return (pred.float() - truth.float()).square().flatten(1).mean(1)  # (B, C*H*W) -> (B,)


def gaussian_window(size: int, sigma: float = 1.5) -> torch.Tensor:
    """A sampled, normalised 1-D Gaussian of ``size`` taps (odd), centred on the middle one: (size,)."""
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-x.square() / (2 * sigma**2))
    return (g / g.sum()).float()


def ssim_per_image(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of each image over its RGB channels (Gaussian window 11, sigma 1.5); (B,) in -1..1.

    SSIM as Wang et al. (2004) define it, on 0..1 values: local means, variances and
    covariance under a Gaussian window, C1 = 0.01^2, C2 = 0.03^2, averaged over every
    pixel. The map is computed at every pixel with the borders reflected (what kornia's
    ``ssim`` does, which this replaces: the figures in the README stay comparable), and
    the window shrinks to the largest odd size that fits an image smaller than 11 pixels.
    """
    import torch.nn.functional as F

    side = min(11, *pred.shape[-2:])
    size = side if side % 2 else side - 1  # odd, and no larger than the image
    x, y = pred.float() / 255.0, truth.float() / 255.0  # (B, C, H, W)
    channels, r = x.shape[1], size // 2
    g = gaussian_window(size).to(x.device)
    # the 1-D kernel as depthwise filters along rows, (C, 1, 1, k), and along columns, (C, 1, k, 1)
    across, down = g.view(1, 1, 1, -1).expand(channels, 1, 1, -1), g.view(1, 1, -1, 1).expand(channels, 1, -1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:  # separable Gaussian, borders reflected: (B, C, H, W)
        t = F.conv2d(F.pad(t, (r, r, 0, 0), mode="reflect"), across, groups=channels)
        return F.conv2d(F.pad(t, (0, 0, r, r), mode="reflect"), down, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y, cov = blur(x * x) - mu_x.square(), blur(y * y) - mu_y.square(), blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    m = (2 * mu_x * mu_y + c1) * (2 * cov + c2) / ((mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2))
    return m.flatten(1).mean(1)  # (B, C*H*W) -> (B,)


def colorfulness(rgb: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Hasler & Suesstrunk (2003) colorfulness of each image; uint8 or 0..255 (B, 3, H, W) -> (B,).

    M = sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2), with rg = R - G and
    yb = (R + G) / 2 - B. A gray image scores 0; vivid photos score about 50-100.
    eps (in squared levels) goes under both square roots: training needs it, since the
    gradient of sqrt at an exactly gray image is infinite; 0 gives the exact figure.
    """
    x = rgb.float()
    rg = (x[:, 0] - x[:, 1]).flatten(1)  # (B, H*W)
    yb = (0.5 * (x[:, 0] + x[:, 1]) - x[:, 2]).flatten(1)  # (B, H*W)
    std = (rg.var(1, unbiased=False) + yb.var(1, unbiased=False) + eps).sqrt()
    mean = (rg.mean(1).square() + yb.mean(1).square() + eps).sqrt()
    return std + 0.3 * mean
