"""Speed of the full-resolution colour stage (guided_planes + compose_guided): the torch version of
an earlier commit against the numpy version in this checkout, in one run.

    python benchmarks/compose_speed.py                  # 12 MP photo and 200 small photos, 7 runs each
    python benchmarks/compose_speed.py --repeat 11 --ref <commit>

The reference is ``src/colorcli/upsample.py`` (and the ``color.py`` it imports) as of --ref, by
default the last commit that composed with torch, written to a temporary folder and imported from
there. Runs alternate between the two so that drift on the machine hits both alike; each figure
is the median. The 12 MP case is a 4000x3000 gray photo with planes at the working scale 85x64
(short side 64), radius 2, eps 1e-3; the small case is 200 photos of 213x160 with 85x64 planes.
The inputs are made once and not timed; the outputs of the two are compared and the share of
pixels that differ is printed too.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image

from colorcli.upsample import compose_guided, guided_planes

ROOT = Path(__file__).resolve().parents[1]
# The last commit whose upsample.py composed with torch.
TORCH_REF = "bf381d0a12612887aafb922d5976f0cfb49a6a81"
RADIUS, EPS = 2, 1e-3


def load_reference(ref: str, folder: Path) -> ModuleType:
    """The ref's upsample.py as a module, importing the ref's color.py rather than today's."""
    for name in ("upsample", "color"):
        text = subprocess.run(
            ["git", "show", f"{ref}:src/colorcli/{name}.py"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        (folder / f"ref_{name}.py").write_text(text.replace("from colorcli.color import", "from ref_color import"))
    sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location("ref_upsample", folder / "ref_upsample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def photo(width: int, height: int, seed: int) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """A photo-like gray image, its 85x64-scale luma and a smooth colourful chroma there: (2, h, w) float32."""
    base = Image.open(ROOT / "examples" / "chelsea-gray.png").convert("L").resize((width, height), Image.BICUBIC)
    rng = np.random.default_rng(seed)
    arr = np.asarray(base, dtype=np.int16) + rng.integers(-6, 7, (height, width), dtype=np.int16)
    gray = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    small = (85, 64) if width >= height else (64, 85)
    working = np.asarray(gray.resize(small, Image.Resampling.BOX))  # (h, w)
    yy, xx = np.mgrid[0 : small[1], 0 : small[0]].astype(np.float32)
    phase = rng.uniform(0, 6, 2)
    chroma = np.stack([50 * np.sin(xx / 9 + phase[0]), 50 * np.cos(yy / 7 + phase[1])])  # (2, h, w)
    return gray, working, (chroma + rng.normal(0, 4, chroma.shape)).astype(np.float32)


def timed(fn: Callable[[], list[Image.Image]]) -> tuple[float, list[Image.Image]]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def compare(name: str, photos: list, reference: ModuleType, repeat: int) -> None:
    """Time both versions on these photos, alternating, and print medians, ratio and differing pixels."""
    import torch

    def ours() -> list[Image.Image]:
        return [compose_guided(g, guided_planes(w, c, RADIUS, EPS)) for g, w, c in photos]

    tensors = [torch.from_numpy(c) for _, _, c in photos]  # the torch version's input, made untimed

    def theirs() -> list[Image.Image]:
        return [
            reference.compose_guided(g, reference.guided_planes(w, t, RADIUS, EPS))
            for (g, w, _), t in zip(photos, tensors, strict=True)
        ]

    times: dict[str, list[float]] = {"torch": [], "numpy": []}
    for i in range(repeat):  # alternate which goes first, too
        for label in ("torch", "numpy") if i % 2 == 0 else ("numpy", "torch"):
            seconds, out = timed(theirs if label == "torch" else ours)
            times[label].append(seconds)
            if label == "torch":
                torch_out = out
            else:
                numpy_out = out
    pairs = zip(torch_out, numpy_out, strict=True)
    diff = [np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max(-1) for a, b in pairs]  # (H, W) each
    differing = sum(int((d > 0).sum()) for d in diff) / sum(d.size for d in diff)
    largest = max(int(d.max()) for d in diff)
    t_torch, t_numpy = statistics.median(times["torch"]), statistics.median(times["numpy"])
    print(
        f"{name}: torch {t_torch * 1000:.1f} ms | numpy {t_numpy * 1000:.1f} ms | numpy/torch {t_numpy / t_torch:.2f}x"
        f" | pixels differing {differing:.2e}, by at most {largest}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--ref", default=TORCH_REF, help="the commit whose torch upsample.py is the reference")
    args = ap.parse_args()
    import torch

    print(f"torch {torch.__version__} with {torch.get_num_threads()} threads, numpy {np.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        reference = load_reference(args.ref, Path(tmp))
        compare("12 MP 4000x3000, planes 85x64", [photo(4000, 3000, 0)], reference, args.repeat)
        compare("200 photos 213x160, planes 85x64", [photo(213, 160, i) for i in range(200)], reference, args.repeat)


if __name__ == "__main__":
    main()
