"""Short fine-tunes on the psnr objective at several colour rewards (--vivid); prints CIFAR and photo scores.

    python benchmarks/vivid_sweep.py runs/default/best.pt --vivid 0,0.05,0.065,0.08 --steps 800 \
        --photos data/photos
    python benchmarks/vivid_sweep.py runs/default/best.pt --vivid 0.065 --zoom 0,0.5:0.5,1:0.34,0.5:0.34 \
        --photos data/photos --more-photos data/photos-holdout --saturation 1.5

Each run starts from the same checkpoint, trains `--steps` batches of its own
training split (black-and-white originals left out) with `--loss psnr` at one
reward, then scores the first `--first` images of its validation split (all
images, and colour originals only) and, if given, folders of photos through the
tiling path. It is how the shipped model's reward was chosen, before the full
fine-tune (`colorcli train --init ... --loss psnr --vivid ...`).

`--zoom P:S` also trains on zoomed-in views, as `colorcli train --zoom P
--zoom-min S` does: with probability P an image is replaced by a random square
crop of at least S of its side, resized back to 32x32 (as a 32x32 tile of a
photo shows part of a scene).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from colorcli.checkpoint import load_model, read_weights
from colorcli.data import (
    flip_where,
    grayscale_images,
    load_dataset,
    make_pair,
    random_zooms,
    zoom_in,
)
from colorcli.evaluate import evaluate_photos, evaluate_tensor
from colorcli.finding import find_images
from colorcli.metrics import share_or_nan
from colorcli.model import Colorizer
from colorcli.split import split_indices
from colorcli.tiling import ColorizeOptions


def parse_zoom(text: str) -> tuple[float, float]:
    """ "P:S" -> (P, S); "P" -> (P, 0.5), as train's --zoom-min defaults; "0" -> no zoom."""
    p, _, smallest = text.partition(":")
    return float(p), float(smallest or 0.5)


def fine_tune(
    checkpoint: Path, train: torch.Tensor, vivid: float, args: argparse.Namespace, zoom: tuple[float, float] = (0, 1)
) -> Colorizer:
    """The checkpoint's model after ``args.steps`` batches of the psnr objective at reward ``vivid``."""
    torch.manual_seed(0)
    model = load_model(checkpoint).train()
    decode = {"temperature": args.temperature, "prior_correction": args.prior_correction}
    decode = {k: v for k, v in decode.items() if v is not None}
    model.config = replace(model.config, loss="psnr", vivid=vivid, **decode)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    crops = torch.Generator().manual_seed(1)  # its own stream: every run samples the same batches
    for _ in range(args.steps):
        batch = train[torch.randint(len(train), (args.batch_size,))]
        flip = torch.rand(args.batch_size) < 0.5
        batch = flip_where(batch, flip)
        if zoom[0] > 0:
            batch = zoom_in(batch, random_zooms(len(batch), *zoom, generator=crops))
        y, rgb = make_pair(batch)
        loss = model.loss(model(y, raw=True), y, rgb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--vivid", default="0,0.05,0.065,0.08", help="colour rewards to try (dB per colorfulness unit)")
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--first", type=int, default=2000, help="validation images to score")
    ap.add_argument("--photos", type=Path, default=None, help="folder of colour photos to score through tiling")
    ap.add_argument("--more-photos", type=Path, default=None, help="a second folder of photos, scored apart")
    ap.add_argument("--zoom", default="0", help="zoom-in augmentations to try, P:S each (0: none)")
    ap.add_argument(
        "--saturation", type=float, default=1.0, help="also score photos at this tile saturation (1: only without)"
    )
    ap.add_argument("--temperature", type=float, default=None, help="train and score this decoding (default: mean)")
    ap.add_argument("--prior-correction", type=float, default=None)
    args = ap.parse_args()

    _, _, extras = read_weights(args.checkpoint)
    tc = extras["train_config"]
    # the images the run split (its --limit too); this sweep is for CIFAR runs, whose tile is the image
    data = load_dataset(tc["dataset"], tc.get("data_dir"), train=True, limit=tc.get("limit"))
    train_idx, val_idx = split_indices(len(data), tc["val_fraction"], tc["seed"])
    train = data[train_idx]
    train = train[~grayscale_images(train)]
    val = data[val_idx[: args.first]]
    folders = [f for f in (args.photos, args.more_photos) if f]
    photo_sets = [(f.name, find_images(f)) for f in folders]
    saturations = sorted({1.0, args.saturation})
    zooms = [parse_zoom(z) for z in args.zoom.split(",")]
    print(f"{args.steps} steps of {args.batch_size} from {args.checkpoint}; {len(val)} validation images")
    header = f"{'vivid':>6} {'zoom':>8} {'all: gain':>9} {'colour':>6} {'colour originals: gain':>22} {'colour':>6}"
    for name, _ in photo_sets:
        for sat in saturations:
            header += f" {f'{name} x{sat:g}: gain':>24} {'colour':>6}"
    print(header + f" {'minutes':>7}")
    for vivid in map(float, args.vivid.split(",")):
        for zoom in zooms:
            t0 = time.perf_counter()
            model = fine_tune(args.checkpoint, train, vivid, args, zoom)
            minutes = (time.perf_counter() - t0) / 60
            r = evaluate_tensor(model, val)
            label = "none" if zoom[0] == 0 else f"{zoom[0]:g}:{zoom[1]:g}"
            row = (
                f"{vivid:6.3f} {label:>8} {r['psnr_gain_db']:+9.2f} {share_or_nan(r['colorfulness_ratio']):6.2f} "
                f"{share_or_nan(r['color_psnr_gain_db']):+22.2f} {share_or_nan(r['color_colorfulness_ratio']):6.2f}"
            )
            for _, paths in photo_sets:
                for sat in saturations:
                    p = evaluate_photos(model, paths, ColorizeOptions(saturation=sat))
                    row += f" {p['psnr_gain_db']:+24.2f} {share_or_nan(p['colorfulness_ratio']):6.2f}"
            print(row + f" {minutes:7.1f}", flush=True)


if __name__ == "__main__":
    main()
