"""Wall time and peak memory of `colorcli colorize` next to the Pillow floor, in one run.

    python benchmarks/colorize_speed.py            # 12 MP photo, 2000 small files, --help
    python benchmarks/colorize_speed.py --large    # also a 50 MP photo
    python benchmarks/colorize_speed.py --photos data/photos-val --model photo   # + 200 real photos

With ``--photos DIR`` it also colorizes the first 200 photos of DIR as one folder (photos/s
with start-up, and peak memory; median of --repeat runs). ``--model`` picks the shipped model every run uses;
``--torch-too`` runs each case a second time with that model's .safetensors, through torch
(the shipped models otherwise run through onnxruntime).

The floor is a fresh Python process that only decodes the JPEG with Pillow,
converts it to gray and writes the RGB PNG; colorcli runs as a fresh process
too, so process start and imports count on both sides. Each figure is the
median of --repeat runs; peak memory is the child's maximum resident set size (which
counts this process's own at the fork, so this one stays small: about 40 MiB).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
FLOOR = "import sys; from PIL import Image; Image.open(sys.argv[1]).convert('L').convert('RGB').save(sys.argv[2])"


def run(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def median_run(cmd: list[str], repeat: int) -> tuple[float, float]:
    runs = [run(cmd) for _ in range(repeat)]
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)


def photo(path: Path, width: int, height: int) -> None:
    """A photo-like JPEG: the example photo enlarged, with sensor-like noise."""
    base = Image.open(ROOT / "examples" / "chelsea-gray.png").convert("RGB").resize((width, height), Image.BICUBIC)
    rng = np.random.default_rng(0)
    arr = np.asarray(base, dtype=np.int16) + rng.integers(-6, 7, (height, width, 1), dtype=np.int16)
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=90)


def make_photo(path: Path, width: int, height: int) -> None:
    """``photo`` in a process of its own: a child's peak memory counts its parent's at the fork
    (Linux keeps the larger), and making a 12 MP photo here would raise this process to some 260 MiB."""
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import colorize_speed as b; "
    subprocess.run([sys.executable, "-c", code + f"b.photo(b.Path({str(path)!r}), {width}, {height})"], check=True)


def variants(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(label, model options) of each way colorize is run: the default (a shipped model through
    onnxruntime), and with --torch-too the same model's .safetensors through torch."""
    model = ["--model", args.model] if args.model else []
    runs = [("onnxruntime" if args.torch_too else "colorcli", model)]
    if args.torch_too:
        from colorcli.checkpoint import shipped_model_path

        runs.append(("torch", ["--checkpoint", str(shipped_model_path(args.model or "default"))]))
    return runs


def bench_large(tmp: Path, args: argparse.Namespace, colorcli: list[str]) -> None:
    sizes = [(4000, 3000)] + ([(8660, 5773)] if args.large else [])
    for w, h in sizes:
        src = tmp / f"photo{w}.jpg"
        make_photo(src, w, h)
        floor_s, floor_mb = median_run([sys.executable, "-c", FLOOR, str(src), str(tmp / "floor.png")], args.repeat)
        line = f"{w * h / 1e6:.0f} MP {w}x{h} JPEG -> PNG: Pillow floor {floor_s:.2f} s {floor_mb:.0f} MiB"
        for label, model in variants(args):
            cmd = colorcli + ["colorize", str(src), "-o", str(tmp / "out.png"), "--overwrite", *model]
            ours_s, ours_mb = median_run(cmd, args.repeat)
            line += f" | {label} {ours_s:.2f} s {ours_mb:.0f} MiB, time ratio {ours_s / floor_s:.2f}x"
        print(line)


def bench_small(tmp: Path, args: argparse.Namespace, colorcli: list[str]) -> None:
    small = tmp / "small"
    small.mkdir()
    side = args.small_side
    for i in range(args.small):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (side, side), dtype=np.uint8)).save(
            small / f"{i}.png"
        )
    for label, model in variants(args):
        one_cmd = colorcli + ["colorize", str(small / "0.png"), "-o", str(tmp / "one.png"), "--overwrite", *model]
        one_s, _ = median_run(one_cmd, args.repeat)
        many_s, many_mb = run(colorcli + ["colorize", str(small), "-o", str(tmp / "many"), "--overwrite", *model])
        print(
            f"{label}: {args.small} files of {side}x{side}: {many_s:.2f} s in all, "
            f"{args.small / many_s:.0f} images/s including start-up, "
            f"{args.small / max(many_s - one_s, 1e-9):.0f} images/s after start-up ({one_s:.2f} s), {many_mb:.0f} MiB"
        )


def bench_photos(tmp: Path, args: argparse.Namespace, colorcli: list[str]) -> None:
    from colorcli.finding import find_images

    folder = tmp / "photos"
    folder.mkdir()
    for i, path in enumerate(find_images(args.photos)[:200]):
        (folder / f"{i:03d}{path.suffix}").write_bytes(path.read_bytes())
    for label, model in variants(args):
        cmd = colorcli + ["colorize", str(folder), "-o", str(tmp / "coloured"), "--overwrite", *model]
        photos_s, photos_mb = median_run(cmd, args.repeat)
        print(
            f"{label}: 200 photos of {args.photos}: {photos_s:.2f} s, "
            f"{200 / photos_s:.1f} photos/s including start-up, {photos_mb:.0f} MiB"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--small", type=int, default=2000, help="number of 32x32 files for the throughput figure")
    ap.add_argument("--large", action="store_true", help="also colorize a 50-megapixel photo")
    ap.add_argument("--small-side", type=int, default=32, help="side of the small files (64: 3000 files of 64x64)")
    ap.add_argument("--photos", type=Path, default=None, help="a folder whose first 200 photos are colorized")
    ap.add_argument("--model", default=None, help="the shipped model to run (default: the default)")
    ap.add_argument(
        "--torch-too", action="store_true", help="also run the model's .safetensors through torch, beside onnxruntime"
    )
    args = ap.parse_args()
    colorcli = [sys.executable, "-m", "colorcli"]
    with tempfile.TemporaryDirectory() as tmp:
        bench_large(Path(tmp), args, colorcli)
        bench_small(Path(tmp), args, colorcli)
        if args.photos is not None:
            bench_photos(Path(tmp), args, colorcli)
        help_s, _ = median_run(colorcli + ["--help"], args.repeat)
        print(f"colorcli --help: {help_s:.2f} s")


if __name__ == "__main__":
    main()
