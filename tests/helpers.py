"""Test helpers importable from every test module."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from colorcli.cli import app
from colorcli.model import ModelConfig

runner = CliRunner()

TINY = ModelConfig(width=4, depth=2)


def colour_image(w: int, h: int, seed: int = 0) -> Image.Image:
    """A smooth, colourful RGB test picture (gradients plus a disc), not noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 100 * np.sin(xx / max(w, 1) * 3 + rng.uniform(0, 6))
    g = 128 + 100 * np.cos(yy / max(h, 1) * 2 + rng.uniform(0, 6))
    b = 128 + 100 * np.sin((xx + yy) / max(w + h, 1) * 4 + rng.uniform(0, 6))
    disc = (xx - w / 2) ** 2 + (yy - h / 2) ** 2 < (min(w, h) / 4) ** 2
    r[disc] = 230
    g[disc] = 40
    arr = np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def tiny_train_args(folder, out, init=None) -> list[str]:
    """`colorcli train` arguments for a one-epoch run of a tiny model on the CPU (or a fine-tune of `init`)."""
    if init is not None:
        shape = tiny_train_args(folder, out)
        at = shape.index("--width")
        return [*shape[:at], *shape[at + 2 :], "--init", str(init)]
    return [
        "train",
        "--dataset",
        str(folder),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--width",
        "4",
        "--device",
        "cpu",
    ]


class StopAfter:
    """Stands in for the signal handler: asks to stop once `n` steps have run."""

    def __init__(self, n: int):
        self.n = n
        self.checks = 0

    def __call__(self):
        outer = self

        class Flag:
            def __enter__(self):
                return self

            def __exit__(self, *a):
                pass

            @property
            def requested(self):
                outer.checks += 1
                return outer.checks >= outer.n

        return Flag()


def luma(path_or_image) -> np.ndarray:
    im = Image.open(path_or_image) if isinstance(path_or_image, Path) else path_or_image
    return np.asarray(im.convert("RGB").convert("L"), dtype=np.int16)


def mode_image(mode: str, w: int = 45, h: int = 37) -> Image.Image:
    rgb = colour_image(w, h, seed=1)
    if mode == "P-transparent":
        im = rgb.convert("P")
        im.info["transparency"] = im.getpixel((0, 0))  # a palette entry the image uses
        return im
    if mode == "I;16":
        arr = np.asarray(rgb.convert("L"), dtype=np.uint16) * 257  # full 16-bit range
        return Image.fromarray(arr)
    if mode == "LA":
        im = rgb.convert("L")
        im.putalpha(128)
        return im.convert("LA")
    return rgb.convert(mode)


# What colorize must not load: training, datasets and scoring (nor, through them, torch.distributed).
TRAINING_MODULES = ("colorcli.train", "colorcli.data", "colorcli.evaluate")

REPORT_TRAINING_MODULES = """
import pathlib, sys
loaded = sorted(m for m in sys.modules if m.startswith("colorcli"))
distributed = [
    m for m in loaded
    if getattr(sys.modules[m], "__file__", None)
    and "torch.distributed" in pathlib.Path(sys.modules[m].__file__).read_text(encoding="utf-8")
]
print(sorted(set(loaded) & set({training!r})), distributed)
""".replace("{training!r}", repr(TRAINING_MODULES))


def cbcr(im: Image.Image) -> np.ndarray:
    """An image's chrominance as (2, H, W) floats, -128..128."""
    return np.asarray(im.convert("YCbCr"))[..., 1:].astype(np.float32).transpose(2, 0, 1) - 128  # (2, H, W)


def invoke(*args: object):
    """Run the `colorcli` app in-process with these arguments (any path-like turned to text)."""
    return runner.invoke(app, [str(a) for a in args])
