"""Colorization models: luma in, chrominance out, both in natural units.

Every architecture is a :class:`Colorizer`: ``model(y)`` takes Rec. 601 luma
(B, 1, H, W) in 0..255 and returns CbCr (B, 2, H, W) in -128..128. Normalisation
lives inside the model, so callers never scale anything. ``model(y, raw=True)``
returns the head's raw output, which ``model.loss`` scores against the true RGB.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from colorcli.color import fit_to_gamut, rgb_to_cbcr, ycbcr_to_rgb
from colorcli.config import HEAD_LOSSES, HEADS, REGRESSION_LOSSES, ModelConfig
from colorcli.config import Decoding as Decoding  # the configs live in config.py (no torch); imported here as before
from colorcli.errors import UsageError
from colorcli.metrics import colorfulness


class Colorizer(nn.Module):
    """Base class: luma (B, 1, H, W) 0..255 -> CbCr (B, 2, H, W) -128..128."""

    config: ModelConfig

    def forward(self, y: torch.Tensor, raw: bool = False) -> torch.Tensor:
        out = self.body(y / 127.5 - 1.0)
        return out if raw else self.chroma(out, y)

    def chroma(self, raw: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """CbCr (B, 2, H, W) in -128..128 from the head's raw output, as forward returns it."""
        return self.decode(raw, y) * self.config.decoding.saturation

    def body(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, raw: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def loss(self, raw: torch.Tensor, y: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """Training loss of raw head output for luma y and true RGB (B, 3, H, W) 0..255."""
        raise NotImplementedError


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    raise UsageError(f"unknown norm {kind!r}; choose batch or group")


def conv_block(c_in: int, c_out: int, norm: str = "batch") -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        norm_layer(norm, c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        norm_layer(norm, c_out),
        nn.ReLU(inplace=True),
    )


class ChromaBins(nn.Module):
    """A regular grid over the CbCr plane, soft (bilinear) labels and annealed-mean decoding.

    Grid points sit every ``spacing`` units from -128 to 128 on both axes; bilinear
    soft labels keep the label's mean exactly equal to the true CbCr, so the
    posterior mean is an unbiased estimate.
    """

    def __init__(self, spacing: float) -> None:
        super().__init__()
        self.n = int(round(256 / spacing)) + 1
        self.spacing = 256 / (self.n - 1)
        axis = torch.linspace(-128, 128, self.n)
        cb, cr = torch.meshgrid(axis, axis, indexing="ij")
        self.register_buffer("points", torch.stack([cb.flatten(), cr.flatten()], 1), persistent=False)  # (K, 2)
        # log of the class-rebalancing weights; set from data before training, saved in checkpoints.
        self.register_buffer("log_weights", torch.zeros(self.n * self.n))

    @property
    def num_classes(self) -> int:
        return self.n * self.n

    def soft_labels(self, cbcr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Four neighbouring classes and their bilinear weights: two (B, 4, H, W) tensors."""
        u = ((cbcr + 128) / self.spacing).clamp(0, self.n - 1)  # (B, 2, H, W) grid units
        i0 = u.floor().clamp(max=self.n - 2)
        f = u - i0
        i0 = i0.long()
        ib, ir = i0[:, 0], i0[:, 1]  # (B, H, W)
        fb, fr = f[:, 0], f[:, 1]
        idx = torch.stack(
            [ib * self.n + ir, ib * self.n + ir + 1, (ib + 1) * self.n + ir, (ib + 1) * self.n + ir + 1], 1
        )  # (B, 4, H, W)
        w = torch.stack([(1 - fb) * (1 - fr), (1 - fb) * fr, fb * (1 - fr), fb * fr], 1)  # (B, 4, H, W)
        return idx, w

    def histogram(self, cbcr: torch.Tensor) -> torch.Tensor:
        """Soft-label class counts (K,) of chrominance (B, 2, H, W)."""
        idx, w = self.soft_labels(cbcr)
        # every pixel's four (class, weight) pairs as one (B*4*H*W,) list each
        return torch.zeros(self.num_classes, dtype=torch.float64).index_add_(0, idx.flatten(), w.flatten().double())

    def set_prior(self, counts: torch.Tensor, rebalance: float) -> None:
        """Zhang et al.'s rebalancing weights w ∝ 1/((1-λ)p + λ/K), normalised so E_p[w] = 1."""
        p = counts.double() / counts.sum().clamp(min=1)
        w = 1.0 / ((1 - rebalance) * p + rebalance / self.num_classes)
        w = w / (p * w).sum().clamp(min=1e-12)
        self.log_weights.copy_(w.log().float())

    def loss(self, logits: torch.Tensor, cbcr: torch.Tensor) -> torch.Tensor:
        """Class-weighted cross-entropy against soft labels. logits: (B, K, H, W)."""
        idx, w = self.soft_labels(cbcr)
        logq = logits.float().log_softmax(1).gather(1, idx)  # (B, 4, H, W)
        class_w = self.log_weights.exp()[idx]  # (B, 4, H, W)
        return -(w * class_w * logq).sum(1).mean()

    def decode(
        self, logits: torch.Tensor, temperature: float, prior_correction: float, confidence: float = 0.0
    ) -> torch.Tensor:
        """Annealed mean of the class distribution: (B, K, H, W) -> CbCr (B, 2, H, W), faded
        where the distribution is flat when ``confidence`` > 0 (see ModelConfig)."""
        logp = logits.float() - prior_correction * self.log_weights.view(1, -1, 1, 1)  # weights as (1, K, 1, 1)
        # Classes last: onnxruntime runs a softmax over the last axis as it is, but transposes
        # for any other (over axis 1 it took 37% of the exported photo model's time).
        logq = (logp / max(temperature, 1e-3)).permute(0, 2, 3, 1).log_softmax(-1)  # (B, H, W, K)
        prob = logq.exp()  # (B, H, W, K)
        mean = (prob @ self.points.to(prob.dtype)).permute(0, 3, 1, 2)  # (B, H, W, 2) -> (B, 2, H, W)
        if not confidence:
            return mean
        entropy = -(prob * logq).sum(-1)[:, None]  # (B, H, W) -> (B, 1, H, W), in 0..log K
        sure = (1 - entropy / math.log(self.num_classes)).clamp(0, 1)
        return mean * sure.pow(confidence)


class UNet(Colorizer):
    """Encoder-decoder with skip connections: spatial detail flows straight from the luma."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        w, d = config.width, config.depth
        chans = [w * 2**i for i in range(d + 1)]
        n = config.norm
        self.enc = nn.ModuleList([conv_block(1 if i == 0 else chans[i - 1], chans[i], n) for i in range(d + 1)])
        # Decoder levels below the head's resolution would be computed and thrown away.
        self.head_level = {1: 0, 2: 1}.get(config.head_scale)
        if self.head_level is None or self.head_level > d:
            raise UsageError(f"head_scale must be 1 or 2 (and at most 2**depth), got {config.head_scale}")
        self.up = nn.ModuleList(
            [
                nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) if i >= self.head_level else nn.Identity()
                for i in range(d)
            ]
        )  # indexed by level; unused levels hold no weights
        self.dec = nn.ModuleList([conv_block(2 * chans[i], chans[i], n) for i in range(self.head_level, d)])
        if config.head == "bins":
            self.bins: ChromaBins | None = ChromaBins(config.bin_spacing)
            out = self.bins.num_classes
        else:
            self.bins = None
            out = 2
        self.head = nn.Conv2d(chans[self.head_level], out, 1)
        self.context = GlobalContext(chans[d]) if config.context else None

    def body(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.enc):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        if self.context is not None:
            x = self.context(x)
        for j in reversed(range(len(self.dec))):
            level = j + self.head_level
            x = self.dec[j](torch.cat([self.up[level](x), skips[level]], 1))  # (B, 2C, h, w) -> (B, C, h, w)
        return self.head(x)  # (B, K or 2, H/head_scale, W/head_scale)

    def decode(self, raw: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.bins is not None:
            d = self.config.decoding
            cbcr = self.bins.decode(raw, d.temperature, d.prior_correction, d.confidence)
        else:
            cbcr = torch.tanh(raw.float()) * 128.0  # bounded to the CbCr range
        if cbcr.shape[-2:] != y.shape[-2:]:
            cbcr = F.interpolate(cbcr, size=y.shape[-2:], mode="bilinear", align_corners=False)
        return cbcr  # (B, 2, H, W)

    def loss(self, raw: torch.Tensor, y: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        if self.config.loss == "psnr":
            pred = ycbcr_to_rgb(y, fit_to_gamut(y, self.chroma(raw, y)))  # (B, 3, H, W), as shipped but unrounded
            return psnr_objective(pred, rgb, self.config.vivid)
        target = rgb_to_cbcr(rgb)  # (B, 2, H, W)
        if target.shape[-2:] != raw.shape[-2:]:
            target = F.adaptive_avg_pool2d(target, raw.shape[-2:])  # (B, 2, H/s, W/s)
        if self.bins is not None:
            loss = self.bins.loss(raw, target)
            if self.config.aux_logmse:
                mean = self.bins.decode(raw, temperature=1.0, prior_correction=1.0)  # (B, 2, H/s, W/s)
                loss = loss + self.config.aux_logmse * regression_loss(mean, target, "logmse")
            return loss
        return regression_loss(torch.tanh(raw.float()) * 128.0, target, self.config.loss)


class GlobalContext(nn.Module):
    """Scene-level features fused into every position of a (B, C, h, w) feature map.

    The map's mean over all positions (B, C) goes through a two-layer MLP and is added
    back at every position. The last layer starts at zero, so a model grown from weights
    trained without the branch starts out computing exactly what it did.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(channels, channels), nn.ReLU(inplace=True), nn.Linear(channels, channels))
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.mlp(x.mean((2, 3)))  # (B, C)
        return x + g[:, :, None, None]  # (B, C, h, w)


def regression_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Loss between CbCr tensors (B, 2, H, W), scaled to about 1 for typical errors."""
    err = (pred - target) / 128.0
    if kind == "mse":
        return err.square().mean()
    if kind == "l1":
        return err.abs().mean()
    if kind == "huber":
        return F.huber_loss(err, torch.zeros_like(err), delta=0.05)
    if kind == "logmse":
        # Mean over images of log MSE: the quantity that mean per-image PSNR averages.
        per_image = err.square().flatten(1).mean(1)  # (B,)
        return (per_image + 1e-5).log().mean()
    raise UsageError(f"unknown regression loss {kind!r}; choose from {', '.join(REGRESSION_LOSSES)}")


def psnr_objective(pred: torch.Tensor, truth: torch.Tensor, vivid: float) -> torch.Tensor:
    """Minus the mean per-image PSNR (dB) of RGB (B, 3, H, W) 0..255, minus ``vivid`` x colorfulness.

    The mean per-image PSNR is what ``colorcli eval`` reports. Alone it pays most for
    near-gray images, so it teaches washed-out colour; the colorfulness reward (Hasler &
    Suesstrunk units, about 30 for a CIFAR image) buys colour back where it costs the
    least PSNR: on images whose colour the model is sure of. The +1 in the MSE (in 8-bit
    levels squared, about the rounding error of the 8-bit output) keeps an exactly right
    image from dominating the mean.
    """
    mse = (pred.float() - truth.float()).square().flatten(1).mean(1)  # (B,)
    psnr = 10 * torch.log10(255.0**2 / (mse + 1.0))
    if not vivid:
        return -psnr.mean()
    return -(psnr + vivid * colorfulness(pred, eps=1e-4)).mean()


class SeedAutoencoder(Colorizer):
    """The original Keras notebooks' design, for reproduction: gray in, RGB out, MSE on RGB.

    Conv + batch-norm + ReLU encoder, dense bottleneck, dense expansion and a
    transposed-convolution decoder to a 32x32 RGB image. It only accepts 32x32
    input (the dense layers fix the size); inference tiles photos to that size.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.encoder = nn.Sequential(
            nn.Conv2d(1, w, 3, stride=2, padding=1),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1),
            nn.BatchNorm2d(4 * w),
            nn.ReLU(inplace=True),
        )
        self.bottleneck = nn.Sequential(
            nn.Flatten(),
            nn.Linear(4 * w * 16, 256),
            nn.ReLU(inplace=True),
            nn.Linear(256, 4 * w * 16),
            nn.ReLU(inplace=True),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(4 * w, 2 * w, 4, stride=2, padding=1),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w, 3, 4, stride=2, padding=1),
            nn.Sigmoid(),
        )

    def body(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (32, 32):
            raise UsageError(f"the seed architecture takes 32x32 input, got {tuple(x.shape[-2:])}")
        z = self.bottleneck(self.encoder(x))  # (B, 4w*16)
        z = z.view(z.shape[0], -1, 4, 4)  # (B, 4w, 4, 4)
        return self.decoder(z)  # (B, 3, 32, 32) RGB in 0..1

    def decode(self, raw: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return rgb_to_cbcr(raw.float() * 255.0)

    def loss(self, raw: torch.Tensor, y: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(raw.float(), rgb / 255.0)


ARCHS: dict[str, Callable[[ModelConfig], Colorizer]] = {"unet": UNet, "seed": SeedAutoencoder}


def build_model(config: ModelConfig) -> Colorizer:
    """Build an untrained model from its config."""
    try:
        factory = ARCHS[config.arch]
    except KeyError:
        raise UsageError(f"unknown architecture {config.arch!r}; choose from {', '.join(ARCHS)}") from None
    if config.head not in HEADS:
        raise UsageError(f"unknown head {config.head!r}; choose from {', '.join(HEADS)}")
    if config.arch == "seed" and config.loss != "mse":
        raise UsageError(f"the seed architecture trains with mse on RGB, as the notebooks did, not {config.loss!r}")
    if config.arch != "seed" and config.loss not in HEAD_LOSSES[config.head]:
        choices = ", ".join(HEAD_LOSSES[config.head])
        raise UsageError(f"the {config.head} head trains with {choices}, not {config.loss!r}")
    if config.vivid and config.loss != "psnr":
        raise UsageError(f"vivid (the colour reward) needs loss psnr, not {config.loss!r}")
    return factory(config)


def check_trainable(config: ModelConfig) -> None:
    """Refuse settings that training would silently ignore (checkpoints that hold them still load)."""
    build_model(config)
    if config.arch == "unet" and config.tile % 2**config.depth:
        raise UsageError(
            f"--tile {config.tile} does not halve evenly through a {config.depth}-level U-Net: "
            f"use a multiple of {2**config.depth} (or fewer levels, --depth)"
        )
    if config.aux_logmse and (config.arch == "seed" or config.head != "bins"):
        raise UsageError("aux_logmse weighs the bins head's posterior mean: it needs --head bins on the unet")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def class_prior_counts(model: Colorizer, data: torch.Tensor, max_images: int = 10_000) -> torch.Tensor | None:
    """Soft-label histogram of the training chrominance, for the bins head's rebalancing."""
    if getattr(model, "bins", None) is None:
        return None
    counts = torch.zeros(model.bins.num_classes, dtype=torch.float64)
    for chunk in data[:max_images].split(1000):
        cbcr = rgb_to_cbcr(chunk.float())  # (B, 2, H, W)
        if model.config.head_scale > 1:
            cbcr = torch.nn.functional.avg_pool2d(cbcr, model.config.head_scale)
        counts += model.bins.histogram(cbcr.cpu())
    return counts
