"""Compare heads and losses on the same small budget; prints one row per variant.

    python benchmarks/loss_ablation.py data/cifar10-jpeg/train --images 20000 --epochs 3 --width 16

Every variant trains the same U-Net body on the same images, split and
schedule, then is scored on the first --eval images of its held-out split
(mean per-image PSNR, pooled PSNR, colorfulness ratio) next to the gray copy.
Bins variants are scored with their default decoding (posterior mean) and with
annealed decoding (T=0.5) so the head can be judged apart from decoding.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from colorcli.checkpoint import load_model
from colorcli.data import load_dataset
from colorcli.evaluate import evaluate_tensor
from colorcli.metrics import share_or_nan
from colorcli.model import ModelConfig
from colorcli.split import split_indices
from colorcli.train import TrainConfig, train

VARIANTS = {
    "regress-mse": {"head": "regress", "loss": "mse", "head_scale": 1},
    "regress-l1": {"head": "regress", "loss": "l1", "head_scale": 1},
    "regress-huber": {"head": "regress", "loss": "huber", "head_scale": 1},
    "regress-logmse": {"head": "regress", "loss": "logmse", "head_scale": 1},
    "bins-ce": {"head": "bins", "loss": "ce"},
    "bins-ce+logmse": {"head": "bins", "loss": "ce", "aux_logmse": 1.0},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--eval", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/ablation"))
    ap.add_argument("--only", default=",".join(VARIANTS))
    args = ap.parse_args()

    data = load_dataset(args.dataset, None, train=True)[: args.images]
    _, val_idx = split_indices(len(data), 0.1, 0)
    holdout = data[val_idx[: args.eval]]
    rows = []
    for name in args.only.split(","):
        cfg = TrainConfig(
            dataset=args.dataset,
            out=str(args.out / name),
            epochs=args.epochs,
            limit=args.images,
            threads=args.threads,
            batch_size=128,
            lr=2e-3,
        )
        t0 = time.perf_counter()
        train(cfg, ModelConfig(width=args.width, **VARIANTS[name]))
        minutes = (time.perf_counter() - t0) / 60
        decodings = {"": {}} if "bins" not in name else {"": {}, " T=0.5": {"temperature": 0.5}}
        for suffix, decode in decodings.items():
            model = load_model(args.out / name / "best.pt", **decode)
            r = evaluate_tensor(model, holdout)
            row = {"variant": name + suffix, "minutes": round(minutes, 1), **r}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{len(holdout)} held-out images, {args.images} images x {args.epochs} epochs, width {args.width}")
    print(f"{'variant':<22} {'PSNR':>7} {'gain':>6} {'pooled':>7} {'SSIM':>6} {'colour':>6} {'min':>5}")
    for r in rows:
        print(
            f"{r['variant']:<22} {r['psnr']:7.2f} {r['psnr_gain_db']:+6.2f} {r['psnr_pooled']:7.2f} "
            f"{r['ssim']:6.4f} {share_or_nan(r['colorfulness_ratio']):6.2f} {r['minutes']:5.1f}"
        )
    print(
        f"{'gray copy':<22} {rows[0]['gray_psnr']:7.2f} {0:+6.2f} {rows[0]['gray_psnr_pooled']:7.2f} "
        f"{rows[0]['gray_ssim']:6.4f} {0:6.2f}"
    )


if __name__ == "__main__":
    main()
