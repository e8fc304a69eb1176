"""How far each output format moves the luma colorize keeps, and what it costs in bytes and time.

    python benchmarks/output_formats.py data/photos/chelsea.png data/photos/coffee.png

Each photo is colorized once with the default model; the result is written in
every output format and read back, and its luma compared with the input's
(mean and largest difference in 8-bit levels). A last row writes lossless WebP at
Pillow's default effort, to compare with the fastest effort colorcli uses.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from colorcli.checkpoint import load_model
from colorcli.images import OUTPUT_FORMATS, load_image, save_result
from colorcli.tiling import ColorizeOptions, colorize_gray


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", type=Path, nargs="+")
    ap.add_argument("--checkpoint", type=Path, default=None)
    args = ap.parse_args()

    model = load_model(args.checkpoint)
    suffixes = [s for s in OUTPUT_FORMATS if s not in (".jpeg", ".tiff")]
    print(f"{'photo':<14} {'format':<6} {'luma mean':>9} {'max':>4} {'KB':>7} {'write s':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for photo in args.photos:
            loaded = load_image(photo)
            rgb = colorize_gray(model, loaded.gray, ColorizeOptions())
            gray = np.asarray(loaded.gray, dtype=np.int16)
            for suffix in suffixes:
                out = Path(tmp) / f"out{suffix}"
                t0 = time.perf_counter()
                save_result(rgb, loaded, out)
                seconds = time.perf_counter() - t0
                back = np.asarray(Image.open(out).convert("RGB").convert("L"), dtype=np.int16)
                off = np.abs(back - gray)
                print(
                    f"{photo.name[:14]:<14} {suffix[1:]:<6} {off.mean():9.3f} {off.max():4d} "
                    f"{out.stat().st_size / 1024:7.0f} {seconds:7.2f}"
                )
            # For comparison: lossless WebP at Pillow's default effort (quality 80), which colorcli does not use.
            out = Path(tmp) / "default.webp"
            t0 = time.perf_counter()
            rgb.save(out, format="WEBP", lossless=True)
            seconds = time.perf_counter() - t0
            size = out.stat().st_size / 1024
            print(f"{photo.name[:14]:<14} {'webp80':<6} {'':>9} {'':>4} {size:7.0f} {seconds:7.2f}")


if __name__ == "__main__":
    main()
