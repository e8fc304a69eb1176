"""Choose colorize's working scale on real photos: scores per scale, and a comparison picture.

    python benchmarks/scale_sweep.py data/photos --scales 32,48,64,96,128,192 \\
        --picture docs/scale-comparison.png --photo data/photos/chelsea.png --show 32,64,128

Each photo is colorized at its own resolution through the tiling path from its
8-bit luma and scored against its colours (mean per-image PSNR, colorfulness
ratio), next to the gray copy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from colorcli.checkpoint import load_model
from colorcli.data import find_images
from colorcli.evaluate import evaluate_photos
from colorcli.inference import ColorizeOptions, colorize_gray


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", type=Path)
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--scales", default="32,48,64,96,128,192")
    ap.add_argument("--picture", type=Path, default=None)
    ap.add_argument("--photo", type=Path, default=None)
    ap.add_argument("--show", default="32,64,128")
    ap.add_argument("--saturations", default="1.0", help="colorize --saturation values to score at each scale")
    ap.add_argument("--per-photo", action="store_true", help="also print each photo's gain and colour")
    args = ap.parse_args()

    model = load_model(args.checkpoint)
    paths = find_images(args.photos)
    print(f"{len(paths)} photos: {', '.join(p.name for p in paths)}")
    print(f"{'scale':>6} {'sat':>5} {'PSNR':>7} {'gain':>6} {'SSIM':>6} {'colour':>6}")
    for scale in map(int, args.scales.split(",")):
        for sat in map(float, args.saturations.split(",")):
            r = evaluate_photos(model, paths, ColorizeOptions(scale=scale, saturation=sat))
            print(
                f"{scale:6d} {sat:5.2f} {r['psnr']:7.2f} {r['psnr_gain_db']:+6.2f} {r['ssim']:6.4f} "
                f"{r['colorfulness_ratio']:6.2f}"
            )
            if args.per_photo:
                for path in paths:
                    one = evaluate_photos(model, [path], ColorizeOptions(scale=scale, saturation=sat))
                    print(f"{'':13}{path.name:<22} {one['psnr_gain_db']:+6.2f} {one['colorfulness_ratio']:6.2f}")
    print(f"{'gray':>6} {'':5} {r['gray_psnr']:7.2f} {0:+6.2f} {r['gray_ssim']:6.4f} {0:6.2f}")

    if args.picture and args.photo:
        truth = Image.open(args.photo).convert("RGB")
        gray = truth.convert("L")
        panels = [("gray input", gray.convert("RGB"))]
        panels += [
            (f"--scale {s}", colorize_gray(model, gray, ColorizeOptions(scale=s)))
            for s in map(int, args.show.split(","))
        ]
        panels.append(("original", truth))
        w, h = truth.size
        sheet = Image.new("RGB", (w * len(panels), h + 24), "white")
        draw = ImageDraw.Draw(sheet)
        for i, (label, im) in enumerate(panels):
            sheet.paste(im, (i * w, 24))
            draw.text((i * w + 6, 5), label, fill="black")
        sheet.save(args.picture)
        print(f"wrote {args.picture}")


if __name__ == "__main__":
    main()
