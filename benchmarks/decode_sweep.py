"""Sweep the bins head's decoding settings on held-out images; prints PSNR and colorfulness.

    python benchmarks/decode_sweep.py runs/default/best.pt --first 1000

Scores the first N images of the checkpoint's own validation split (the same
split `colorcli eval --holdout` uses) for each temperature x prior_correction x
saturation, next to the gray copy, so the decoding can be chosen on a part of
the validation split and reported on all of it. Gains and colour ratios are given
over all images and over the colour originals only (black-and-white originals
left out; see `colorcli eval`).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch

from colorcli.checkpoint import load_model
from colorcli.color import gray_to_rgb_u8, luma_u8, ycbcr_to_rgb_u8
from colorcli.data import grayscale_images
from colorcli.evaluate import Scores, holdout_images, summarize
from colorcli.metrics import share_or_nan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--first", type=int, default=1000, help="validation images to use")
    ap.add_argument("--temperatures", default="1.0,0.7,0.5,0.38")
    ap.add_argument("--corrections", default="1.0,0.5,0.0")
    ap.add_argument("--saturations", default="1.0,1.15,1.3")
    args = ap.parse_args()

    model = load_model(args.checkpoint)
    # the run's own held-out split, as `colorcli eval --holdout` and training's validation see it
    rgb = holdout_images(args.checkpoint, None, None, size=model.config.tile)[: args.first]
    y = luma_u8(rgb).float()
    with torch.inference_mode():
        raw = torch.cat([model(b, raw=True) for b in y.split(250)])  # (N, K, h, w) logits, decoded many ways
    gray_scores = Scores.of(gray_to_rgb_u8(luma_u8(rgb)), rgb)
    gray = gray_scores.summary()
    from colorcli.metrics import colorfulness

    truth_cf = colorfulness(rgb)
    bw = grayscale_images(rgb)
    print(
        f"{len(rgb)} validation images ({int(bw.sum())} black-and-white); gray copy PSNR {gray['psnr']:.3f} dB; "
        f"truth colorfulness {truth_cf.mean().item():.1f}"
    )
    print(
        f"{'T':>5} {'corr':>5} {'sat':>5} {'PSNR':>7} {'gain':>6} {'pooled':>7} {'SSIM':>6} {'cf ratio':>8}"
        f" | colour originals: {'gain':>6} {'cf ratio':>8}"
    )
    grid = itertools.product(
        *(map(float, s.split(",")) for s in (args.temperatures, args.corrections, args.saturations))
    )
    for t, c, sat in grid:
        with torch.inference_mode():
            cbcr = model.bins.decode(raw, t, c)  # (N, 2, h, w)
            cbcr = torch.nn.functional.interpolate(cbcr, size=y.shape[-2:], mode="bilinear", align_corners=False)
            pred = ycbcr_to_rgb_u8(y, cbcr * sat)
        s = summarize(Scores.of(pred, rgb), gray_scores, truth_cf, bw)
        print(
            f"{t:5.2f} {c:5.2f} {sat:5.2f} {s['psnr']:7.3f} {s['psnr_gain_db']:+6.3f} "
            f"{s['psnr_pooled']:7.3f} {s['ssim']:6.4f} {share_or_nan(s['colorfulness_ratio']):8.3f}"
            f" | {'':17} {share_or_nan(s['color_psnr_gain_db']):+6.3f} "
            f"{share_or_nan(s['color_colorfulness_ratio']):8.3f}"
        )


if __name__ == "__main__":
    main()
