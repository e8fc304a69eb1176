"""What the JPEG damage check costs colorize, in fresh processes, run in pairs (with, without).

    python benchmarks/damage_check_cost.py --photos data/photos-val --repeat 5

"Without" is the same command with ``jpeg_check.submit_check`` replaced by an answer of
"no damage", so nothing else changes. Prints the median wall time of each side and the
median of the pairwise ratios, for the first 200 photos of --photos as one folder and for
a 12 MP JPEG (the photo `colorize_speed.py` makes); and, for scale, the check alone on
the same files in this process.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from colorize_speed import photo  # noqa: E402

WITHOUT = (
    "import sys\n"
    "from concurrent.futures import Future\n"
    "import colorcli.jpeg_check as jc\n"
    "def none(path):\n"
    "    f = Future(); f.set_result(None); return f\n"
    "jc.submit_check = none\n"
    "import colorcli.runner as r\n"
    "r.submit_check = none\n"
    "from colorcli.cli import main\n"
    "sys.argv[0] = 'colorcli'\n"
    "main()\n"
)


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def paired(args: list[str], repeat: int) -> tuple[float, float, float]:
    """Median seconds with the check, without it, and the median of with/without over pairs."""
    with_check, without = [], []
    for _ in range(repeat):
        with_check.append(wall([sys.executable, "-m", "colorcli", *args]))
        without.append(wall([sys.executable, "-c", WITHOUT, *args]))
    ratios = [a / b for a, b in zip(with_check, without, strict=True)]
    return statistics.median(with_check), statistics.median(without), statistics.median(ratios)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, required=True, help="a folder whose first 200 photos are colorized")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from colorcli.finding import find_images
    from colorcli.jpeg_check import jpeg_damage

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "photos"
        folder.mkdir()
        for i, path in enumerate(find_images(args.photos)[:200]):
            (folder / f"{i:03d}{path.suffix}").write_bytes(path.read_bytes())
        big = tmp / "photo12.jpg"
        photo(big, 4000, 3000)
        cases = [
            ("200 photos", [folder], ["colorize", str(folder), "-o", str(tmp / "out"), "--overwrite"]),
            ("12 MP JPEG", [big], ["colorize", str(big), "-o", str(tmp / "out.png"), "--overwrite"]),
        ]
        for name, files, cli_args in cases:
            paths = find_images(files[0]) if files[0].is_dir() else files
            t0 = time.perf_counter()
            for p in paths:
                jpeg_damage(p)
            alone = time.perf_counter() - t0
            a, b, ratio = paired(cli_args, args.repeat)
            print(
                f"{name}: with the check {a:.2f} s, without {b:.2f} s, ratio {ratio:.3f} "
                f"(the check alone: {alone:.2f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
