"""Average the weights of several checkpoints of one architecture (a uniform "model soup").

    python benchmarks/average_checkpoints.py runs/photo-anneal/best.pt runs/photo-bal/best.pt \\
        runs/photo-bal2/best.pt -o runs/soup/s234/best.pt

Floating-point tensors (batch-norm statistics included) are averaged; the rest and every
other field come from the last checkpoint. Score the result with ``photo_sweep.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from colorcli.checkpoint import load_checkpoint, save_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", type=Path, nargs="+")
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    loaded = [load_checkpoint(p) for p in args.checkpoints]
    configs = {str(c["model_config"]) for c in loaded}
    if len(configs) > 1:
        raise SystemExit("the checkpoints differ in model_config; only one architecture can be averaged")
    states = [c["model"] for c in loaded]
    soup = {
        k: torch.stack([s[k].float() for s in states]).mean(0) if v.is_floating_point() else v
        for k, v in states[-1].items()
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # The figures and history of one run are not the average's: left out, and its parents named.
    kept = {k: v for k, v in loaded[-1].items() if k not in ("metrics", "history", "best_val")}
    save_checkpoint(args.output, {**kept, "model": soup, "averaged_from": [str(p) for p in args.checkpoints]})
    print(f"wrote {args.output}: the mean of {len(states)} checkpoints")


if __name__ == "__main__":
    main()
