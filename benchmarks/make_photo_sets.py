"""Build the photo sets the README scores the tiling path on, from files inside packages on PyPI.

    python benchmarks/make_photo_sets.py            # writes data/photos and data/photos-holdout

data/photos (the working scale and tile saturation were chosen on these):
scikit-image's astronaut, chelsea, coffee and rocket, and matplotlib's
grace_hopper (public domain or CC0). data/photos-holdout (no choice was made on
these): scipy 1.10's raccoon (public domain), scikit-learn's china and flower
(CC BY 2.0, by danielbuechele and vultilion on Flickr) and scikit-image's
motorcycle (Middlebury 2014 stereo dataset, left view). They are for local
measurement; none is committed. Needs `pip download` to reach a package index.
"""

from __future__ import annotations

import argparse
import bz2
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

# (package to download, member path inside it, set, file name)
SOURCES = [
    ("scikit-image==0.19.3", "skimage/data/astronaut.png", "photos", "astronaut.png"),
    ("scikit-image==0.19.3", "skimage/data/chelsea.png", "photos", "chelsea.png"),
    ("scikit-image==0.19.3", "skimage/data/coffee.png", "photos", "coffee.png"),
    ("scikit-image==0.19.3", "skimage/data/rocket.jpg", "photos", "rocket.jpg"),
    ("matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg", "photos", "grace_hopper.jpg"),
    ("scipy==1.10.1", "scipy/misc/face.dat", "photos-holdout", "raccoon.png"),
    ("scikit-learn", "sklearn/datasets/images/china.jpg", "photos-holdout", "china.jpg"),
    ("scikit-learn", "sklearn/datasets/images/flower.jpg", "photos-holdout", "flower.jpg"),
    ("scikit-image==0.19.3", "skimage/data/motorcycle_left.png", "photos-holdout", "motorcycle.png"),
]


def download(spec: str, into: Path) -> Path:
    """The wheel or source archive of `spec`, fetched with pip (no dependencies) into an empty folder."""
    into.mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", spec, "-d", str(into)], check=True)
    [archive] = into.iterdir()
    return archive


def read_member(archive: Path, member: str) -> bytes:
    """A file from a wheel (zip) or an sdist (tar.gz, under its top folder)."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    with tarfile.open(archive) as t:
        found = next(m for m in t.getmembers() if m.name.split("/", 1)[-1] == member)
        f = t.extractfile(found)
        assert f is not None
        return f.read()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("data"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache: dict[str, Path] = {}
        for spec, member, folder, name in SOURCES:
            if spec not in cache:
                cache[spec] = download(spec, Path(tmp) / str(len(cache)))
            data = read_member(cache[spec], member)
            dst = args.out / folder / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if member.endswith("face.dat"):  # bz2-compressed raw RGB, 768 x 1024
                pixels = np.frombuffer(bz2.decompress(data), dtype=np.uint8).reshape(768, 1024, 3)
                Image.fromarray(pixels, "RGB").save(dst)
            else:
                dst.write_bytes(data)
            print(f"wrote {dst}")


if __name__ == "__main__":
    main()
