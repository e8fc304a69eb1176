"""Score models on a folder of colour photos through colorize's own path, over working
scales and saturations, overall and per group of sources; one model call per photo and scale.

    python benchmarks/photo_sweep.py data/photos-val --checkpoints runs/abl/t32/best.pt,runs/abl/t64/best.pt \\
        --scales 64,96 --saturations 0.8,1.0,1.2

Figures: mean per-image PSNR gain over the gray copy (dB) and the mean colourfulness as a
share of the truth's (Hasler & Suesstrunk), as ``colorcli eval --full-res`` reports them.
A photo's group is its first folder under the root (for photos-train's split: its
source); ``--groups`` folds sources into named groups. Checkpoints are read with
``tile_saturation`` 1 unless ``--keep-tile-saturation``; "default" and "cifar10" name
the shipped models.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from colorcli.color import gray_to_rgb_u8, luma_u8
from colorcli.finding import find_images
from colorcli.images import load_rgb
from colorcli.metrics import colorfulness, psnr_per_image
from colorcli.tiling import ColorizeOptions, full_resolution, predict_chroma, working_gray

GROUPS = {
    "scenes": {"camvid", "coco", "dpst", "imnet", "lomiri", "plasma", "urban100"},
    "faces": {"utkface", "facemask", "fexpr"},
    "pets": {"catdog"},
    "clothing": {"cloth"},
}


def load(spec: str, keep_tile_saturation: bool, confidence: float | None):
    from colorcli.checkpoint import load_model, named_model_path

    decode = {} if keep_tile_saturation else {"tile_saturation": 1.0}
    if confidence is not None:
        decode["confidence"] = confidence
    return load_model(named_model_path(spec), **decode)


def group_of(path: Path, root: Path) -> str:
    rel = path.relative_to(root).parts
    source = rel[0] if len(rel) > 1 else "all"
    return next((g for g, members in GROUPS.items() if source in members), source)


def share(pairs: list[tuple[float, float]]) -> float:
    """Mean colourfulness of the outputs as a share of the truths' mean."""
    return sum(a for a, _ in pairs) / max(1e-9, sum(b for _, b in pairs))


def to_tensor(im) -> torch.Tensor:
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)[None]  # (1, 3, H, W)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", type=Path)
    ap.add_argument("--checkpoints", default="default")
    ap.add_argument("--scales", default="", help="working scales (default: each model's own)")
    ap.add_argument("--saturations", default="1.0")
    ap.add_argument("--confidences", default="", help="confidence fading exponents (default: each model's own)")
    ap.add_argument("--limit", type=int, default=None, help="every k-th photo so that about this many are scored")
    ap.add_argument("--keep-tile-saturation", action="store_true")
    ap.add_argument("--csv", type=Path, default=None, help="also write every photo's figures here (paired_gain.py)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    paths = find_images(args.photos)
    if args.limit and len(paths) > args.limit:
        paths = paths[:: len(paths) // args.limit][: args.limit]
    sats = [float(s) for s in args.saturations.split(",")]
    photos = [(p, load_rgb(p)) for p in paths]
    groups = sorted({group_of(p, args.photos) for p, _ in photos})
    print(
        f"{len(photos)} photos in {args.photos}: "
        + ", ".join(f"{g} {sum(group_of(p, args.photos) == g for p, _ in photos)}" for g in groups)
    )
    header = f"{'model':<28} {'conf':>4} {'scale':>5} {'sat':>5} {'gain':>7} {'colour':>6}" + "".join(
        f" {g[:8]:>8} {'col':>5}" for g in groups
    )
    print(header)
    confs = [float(c) for c in args.confidences.split(",")] if args.confidences else [None]
    per_photo: list[tuple] = []
    for spec, conf in [(s, c) for s in args.checkpoints.split(",") for c in confs]:
        model = load(spec, args.keep_tile_saturation, conf)
        scales = [int(s) for s in args.scales.split(",")] if args.scales else [None]
        for scale in scales:
            options = ColorizeOptions(scale=scale)
            shown = options.for_model(model).scale
            gain = defaultdict(lambda: defaultdict(list))
            col = defaultdict(lambda: defaultdict(list))
            t0 = time.perf_counter()
            for path, rgb in photos:
                g = group_of(path, args.photos)
                truth = to_tensor(rgb)
                gray_im = rgb.convert("L")
                working = working_gray(gray_im, shown)
                chroma = predict_chroma(model, working, options)  # (2, h, w)
                gray_psnr = psnr_per_image(gray_to_rgb_u8(luma_u8(truth)), truth).item()
                truth_cf = colorfulness(truth).item()
                for s in sats:
                    pred = to_tensor(full_resolution(gray_im, working, chroma * s, options))
                    gain[s][g].append(psnr_per_image(pred, truth).item() - gray_psnr)
                    col[s][g].append((colorfulness(pred).item(), truth_cf))
                    per_photo.append(
                        (spec, model.config.confidence, shown, s, path.relative_to(args.photos), g)
                        + (gain[s][g][-1], *col[s][g][-1])
                    )
            seconds = time.perf_counter() - t0
            for s in sats:
                all_gain = [x for g in groups for x in gain[s][g]]
                all_col = [x for g in groups for x in col[s][g]]
                ratio = share(all_col)
                name = Path(spec).parent.name or spec
                row = f"{name:<28} {model.config.confidence:>4.1f} {shown:>5} {s:>5.2f}"
                row += f" {np.mean(all_gain):>+7.2f} {ratio:>6.2f}"
                for g in groups:
                    row += f" {np.mean(gain[s][g]):>+8.2f} {share(col[s][g]):>5.2f}"
                print(row, flush=True)
            print(f"  ({seconds:.0f} s)", flush=True)
    if args.csv:
        with args.csv.open("w", newline="") as f:
            out = csv.writer(f)
            out.writerow(
                ["model", "confidence", "scale", "saturation", "photo", "group", "gain", "colour", "truth_colour"]
            )
            out.writerows(per_photo)


if __name__ == "__main__":
    main()
