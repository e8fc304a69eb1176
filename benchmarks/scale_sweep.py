"""Choose colorize's working scale on real photos: scores per scale, and a comparison picture.

    python benchmarks/scale_sweep.py data/photos --scales 32,48,64,96,128,192 \\
        --picture docs/scale-comparison.png --photo data/photos/chelsea.png --show 32,64,128
    python benchmarks/scale_sweep.py data/photos-holdout --scales 96 --radii 0,1,2,3,4 --per-photo
    python benchmarks/scale_sweep.py data/photos --scales 96 --radii 2 --eps 1e6   # smoothing, no guide

Each photo is colorized at its own resolution through the tiling path from its
8-bit luma and scored against its colours (mean per-image PSNR, colorfulness
ratio), next to the gray copy. ``--radii`` compares the guided chroma
upsampling's radius (0: plain bilinear upsampling) in the same run; a huge
``--eps`` turns the guide off and leaves the filter's smoothing alone. The
picture uses the first radius.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from colorcli.checkpoint import load_model
from colorcli.evaluate import evaluate_photos
from colorcli.finding import find_images
from colorcli.metrics import share_or_nan
from colorcli.tiling import ColorizeOptions, colorize_gray


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", type=Path)
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--scales", default="32,48,64,96,128,192")
    ap.add_argument("--picture", type=Path, default=None)
    ap.add_argument("--photo", type=Path, default=None)
    ap.add_argument("--show", default="32,64,128")
    ap.add_argument("--saturations", default="1.0", help="colorize --saturation values to score at each scale")
    ap.add_argument("--radii", default="2", help="guide radii (0: bilinear upsampling) to score at each scale")
    ap.add_argument("--eps", type=float, default=ColorizeOptions.guide_eps, help="the guided filter's regulariser")
    ap.add_argument("--per-photo", action="store_true", help="also print each photo's gain and colour")
    args = ap.parse_args()

    model = load_model(args.checkpoint)
    paths = find_images(args.photos)
    print(f"{len(paths)} photos: {', '.join(p.name for p in paths)}")
    print(f"{'scale':>6} {'sat':>5} {'radius':>6} {'PSNR':>7} {'gain':>6} {'SSIM':>6} {'colour':>6}")
    for scale in map(int, args.scales.split(",")):
        for sat in map(float, args.saturations.split(",")):
            for radius in map(int, args.radii.split(",")):
                opts = ColorizeOptions(scale=scale, saturation=sat, guide_radius=radius, guide_eps=args.eps)
                r = evaluate_photos(model, paths, opts, per_image=args.per_photo)
                print(
                    f"{scale:6d} {sat:5.2f} {radius:6d} {r['psnr']:7.2f} {r['psnr_gain_db']:+6.2f} "
                    f"{r['ssim']:6.4f} {share_or_nan(r['colorfulness_ratio']):6.2f}"
                )
                for one in r.get("per_image", []):
                    name, gain, colour = (
                        Path(one["file"]).name,
                        one["psnr_gain_db"],
                        share_or_nan(one["colorfulness_ratio"]),
                    )
                    print(f"{'':20}{name:<22} {gain:+6.2f} {colour:6.2f}")
    print(f"{'gray':>6} {'':5} {'':6} {r['gray_psnr']:7.2f} {0:+6.2f} {r['gray_ssim']:6.4f} {0:6.2f}")

    if args.picture and args.photo:
        first = int(args.radii.split(",")[0])
        truth = Image.open(args.photo).convert("RGB")
        gray = truth.convert("L")
        panels = [("gray input", gray.convert("RGB"))]
        panels += [
            (
                f"--scale {s}",
                colorize_gray(model, gray, ColorizeOptions(scale=s, guide_radius=first, guide_eps=args.eps)),
            )
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
