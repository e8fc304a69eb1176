"""Test-time flip averaging, tried on the validation photos and not kept: each tile's
chrominance averaged with that of its mirror image (twice the model's time), scored as
`colorcli eval --full-res` scores, at each --saturations factor.

    python benchmarks/flip_average.py data/photos-val --saturations 1.0,1.15

Compare with the plain model at equal colourfulness (`colorcli eval --dataset
data/photos-val --full-res --json`: +4.19 dB at 0.685 of the colour).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import colorcli
from colorcli import engine
from colorcli.evaluate import evaluate_photos
from colorcli.finding import find_images
from colorcli.tiling import ColorizeOptions


class FlipAveraged(engine.TorchTiles):
    """A torch model whose chrominance is the mean of a tile's and its mirror's (mirrored back)."""

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        mirrored = np.ascontiguousarray(tiles[..., ::-1])  # (b, 1, t, t), columns reversed
        return (super().__call__(tiles) + super().__call__(mirrored)[..., ::-1]) / 2  # (b, 2, t, t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", type=Path)
    ap.add_argument("--model", default="photo")
    ap.add_argument("--saturations", default="1.0")
    args = ap.parse_args()
    model = FlipAveraged(colorcli.load_model(args.model))
    paths = find_images(args.photos)
    for saturation in (float(s) for s in args.saturations.split(",")):
        scores = evaluate_photos(model, paths, ColorizeOptions(saturation=saturation))
        gain, colour = scores["psnr_gain_db"], scores["colorfulness_ratio"]
        print(json.dumps({"saturation": saturation, "psnr_gain_db": gain, "colorfulness_ratio": colour}))


if __name__ == "__main__":
    main()
