"""Short fine-tunes on the psnr objective at several colour rewards (--vivid); prints CIFAR and photo scores.

    python benchmarks/vivid_sweep.py runs/default/best.pt --vivid 0,0.05,0.065,0.08 --steps 800 \
        --photos data/photos

Each run starts from the same checkpoint, trains `--steps` batches of its own
training split (black-and-white originals left out) with `--loss psnr` at one
reward, then scores the first `--first` images of its validation split (all
images, and colour originals only) and, if given, a folder of photos through the
tiling path. It is how the shipped model's reward was chosen, before the full
fine-tune (`colorcli train --init ... --loss psnr --vivid ...`).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from colorcli.checkpoint import load_model, read_weights
from colorcli.data import find_images, flip_where, grayscale_images, load_dataset, make_pair, split_indices
from colorcli.evaluate import evaluate_photos, evaluate_tensor
from colorcli.inference import ColorizeOptions
from colorcli.model import Colorizer


def fine_tune(checkpoint: Path, train: torch.Tensor, vivid: float, args: argparse.Namespace) -> Colorizer:
    """The checkpoint's model after ``args.steps`` batches of the psnr objective at reward ``vivid``."""
    torch.manual_seed(0)
    model = load_model(checkpoint).train()
    decode = {"temperature": args.temperature, "prior_correction": args.prior_correction}
    decode = {k: v for k, v in decode.items() if v is not None}
    model.config = replace(model.config, loss="psnr", vivid=vivid, **decode)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    for _ in range(args.steps):
        batch = train[torch.randint(len(train), (args.batch_size,))]
        flip = torch.rand(args.batch_size) < 0.5
        y, rgb = make_pair(flip_where(batch, flip))
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
    ap.add_argument("--temperature", type=float, default=None, help="train and score this decoding (default: mean)")
    ap.add_argument("--prior-correction", type=float, default=None)
    args = ap.parse_args()

    _, _, extras = read_weights(args.checkpoint)
    tc = extras["train_config"]
    data = load_dataset(tc["dataset"], tc.get("data_dir"), train=True)
    train_idx, val_idx = split_indices(len(data), tc["val_fraction"], tc["seed"])
    train = data[train_idx]
    train = train[~grayscale_images(train)]
    val = data[val_idx[: args.first]]
    photos = find_images(args.photos) if args.photos else []
    print(f"{args.steps} steps of {args.batch_size} from {args.checkpoint}; {len(val)} validation images")
    print(f"{'vivid':>6} {'all: gain':>9} {'colour':>6} {'colour originals: gain':>22} {'colour':>6}", end="")
    print(f" {'photos: gain':>12} {'colour':>6} {'minutes':>7}" if photos else "")
    for vivid in map(float, args.vivid.split(",")):
        t0 = time.perf_counter()
        model = fine_tune(args.checkpoint, train, vivid, args)
        minutes = (time.perf_counter() - t0) / 60
        r = evaluate_tensor(model, val)
        row = (
            f"{vivid:6.3f} {r['psnr_gain_db']:+9.2f} {r['colorfulness_ratio']:6.2f} "
            f"{r['color_psnr_gain_db']:+22.2f} {r['color_colorfulness_ratio']:6.2f}"
        )
        if photos:
            p = evaluate_photos(model, photos, ColorizeOptions())
            row += f" {p['psnr_gain_db']:+12.2f} {p['colorfulness_ratio']:6.2f}"
        print(row + f" {minutes:7.1f}", flush=True)


if __name__ == "__main__":
    main()
