"""Split photos-train into a training folder and a validation folder, by file, once.

Every ``--every``-th photo of each source (in sorted order) goes to the validation
folder, so each source is represented in proportion; the rest to the training folder.
Files are hard-linked (copied where links are impossible), never moved.

    python benchmarks/split_photos.py data/photos-train --train data/photos-tr --val data/photos-val
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

SUFFIXES = {".jpg", ".jpeg", ".png"}


def link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--val", type=Path, required=True)
    ap.add_argument("--every", type=int, default=15)
    args = ap.parse_args()
    counts = {"train": 0, "val": 0}
    for folder in sorted(p for p in args.source.iterdir() if p.is_dir()):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
        for i, f in enumerate(files):
            side = "val" if i % args.every == args.every // 2 else "train"
            link(f, (args.val if side == "val" else args.train) / folder.name / f.name)
            counts[side] += 1
    print(f"{counts['train']} training photos in {args.train}, {counts['val']} validation photos in {args.val}")


if __name__ == "__main__":
    main()
