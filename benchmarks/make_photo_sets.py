"""Build the photo sets the README scores the tiling path on, from files inside PyPI and Debian packages.

    python benchmarks/make_photo_sets.py            # writes data/photos, data/photos-holdout, data/photos-debian

data/photos (the working scale and tile saturation were chosen on these):
scikit-image's astronaut, chelsea, coffee and rocket, and matplotlib's
grace_hopper (public domain or CC0). data/photos-holdout (no choice was made on
these): scipy 1.10's raccoon (public domain), scikit-learn's china and flower
(CC BY 2.0, by danielbuechele and vultilion on Flickr) and scikit-image's
motorcycle (Middlebury 2014 stereo dataset, left view).

data/photos-debian (no choice was made on these either; the set was fixed
before any was colorized): the colour photographs of real scenes in two Debian
bookworm packages, one view of each stereo pair or image sequence. From
opencv-doc's examples/data (OpenCV's sample images: drawings, renderings,
synthetic patterns, a painting, logos and gray images left out, and also
sudoku.png, a nearly gray photograph of a printed puzzle: colourfulness 5.5,
where the least colourful photo kept has 13.6) and all twelve of
mate-backgrounds' nature photos (GPL-2+).

    python benchmarks/make_photo_sets.py --debian-only              # data/photos-debian alone
    python benchmarks/make_photo_sets.py --debian-only --debs DIR   # from .deb files already in DIR

They are for local measurement; none is committed. Needs `pip download` to
reach a package index, and HTTP access to deb.debian.org unless --debs is
given. Once Debian drops these versions from its pool, fetch the same files
from snapshot.debian.org into DIR (the SHA-256 check stays).
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

# (package to download, member path inside it, set, file name)
SOURCES = [
    ("scikit-image==0.24.0", "skimage/data/astronaut.png", "photos", "astronaut.png"),
    ("scikit-image==0.24.0", "skimage/data/chelsea.png", "photos", "chelsea.png"),
    ("scikit-image==0.24.0", "skimage/data/coffee.png", "photos", "coffee.png"),
    ("scikit-image==0.24.0", "skimage/data/rocket.jpg", "photos", "rocket.jpg"),
    ("matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg", "photos", "grace_hopper.jpg"),
    ("scipy==1.10.1", "scipy/misc/face.dat", "photos-holdout", "raccoon.png"),
    ("scikit-learn", "sklearn/datasets/images/china.jpg", "photos-holdout", "china.jpg"),
    ("scikit-learn", "sklearn/datasets/images/flower.jpg", "photos-holdout", "flower.jpg"),
    ("scikit-image==0.24.0", "skimage/data/motorcycle_left.png", "photos-holdout", "motorcycle.png"),
]

# (Debian package URL, its SHA-256, folder inside its data archive, file names taken)
DEBIAN = "http://deb.debian.org/debian/pool/main/"
OPENCV_PHOTOS = (
    "aero1.jpg aloeL.jpg apple.jpg baboon.jpg board.jpg building.jpg butterfly.jpg chicky_512.png "
    "ela_original.jpg fruits.jpg graf1.png home.jpg left.jpg leuvenA.jpg licenseplate_motion.jpg "
    "messi5.jpg orange.jpg pca_test1.jpg rubberwhale1.png smarties.png squirrel_cls.jpg stuff.jpg"
).split()
MATE_NATURE = (
    "Aqua.jpg Blinds.jpg Dune.jpg FreshFlower.jpg Garden.jpg GreenMeadow.jpg LadyBird.jpg "
    "RainDrops.jpg Storm.jpg TwoWings.jpg Wood.jpg YellowFlower.jpg"
).split()
DEB_SOURCES = [
    (
        DEBIAN + "o/opencv/opencv-doc_4.6.0+dfsg-12_all.deb",
        "4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a",
        "./usr/share/doc/opencv-doc/examples/data/",
        OPENCV_PHOTOS,
    ),
    (
        DEBIAN + "m/mate-backgrounds/mate-backgrounds_1.26.0-1_all.deb",
        "7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04",
        "./usr/share/backgrounds/mate/nature/",
        MATE_NATURE,
    ),
]


def download(spec: str, into: Path) -> Path:
    """The wheel or source archive of `spec`, fetched with pip (no dependencies) into an empty folder."""
    into.mkdir(parents=True)
    # Wheels only: an old release without a wheel for this Python would be built from source (minutes).
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--quiet",
        spec,
        "-d",
        str(into),
    ]
    subprocess.run(cmd, check=True)
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


def deb_data_archive(deb: bytes) -> tarfile.TarFile:
    """The data.tar.* member of a Debian package (an `ar` archive of 60-byte headers, 2-byte aligned),
    opened as a stream: one pass over its compressed bytes."""
    if not deb.startswith(b"!<arch>\n"):
        raise SystemExit("not a Debian package (no ar header)")
    at = 8
    while at + 60 <= len(deb):
        name = deb[at : at + 16].decode().strip().rstrip("/")
        size = int(deb[at + 48 : at + 58])
        if name.startswith("data.tar"):
            return tarfile.open(fileobj=io.BytesIO(deb[at + 60 : at + 60 + size]), mode="r|*")
        at += 60 + size + size % 2
    raise SystemExit("no data.tar in the Debian package")


def read_deb(url: str, sha256: str, debs: Path | None) -> bytes:
    """The package at ``url``, from ``debs`` (a folder of .deb files) if given, checked by SHA-256."""
    name = url.rsplit("/", 1)[-1]
    if debs is not None:
        deb = (debs / name).read_bytes()
    else:
        try:
            with urllib.request.urlopen(url, timeout=300) as response:
                deb = response.read()
        except OSError as e:  # URLError and HTTPError included
            raise SystemExit(
                f"{url}: cannot download ({e}); fetch {name} (from snapshot.debian.org if Debian has "
                "dropped it) into a folder and pass --debs FOLDER"
            ) from None
    if hashlib.sha256(deb).hexdigest() != sha256:
        raise SystemExit(f"{name}: SHA-256 differs from the one this script was written for")
    return deb


def copy_debian_photos(out: Path, debs: Path | None = None) -> None:
    for url, sha256, folder, names in DEB_SOURCES:
        wanted = {folder + name: name for name in names}
        found: set[str] = set()
        with deb_data_archive(read_deb(url, sha256, debs)) as archive:
            for member in archive:
                if member.name not in wanted:
                    continue
                f = archive.extractfile(member)
                if f is None:
                    raise SystemExit(f"{url}: {member.name} is not a file")
                data = f.read()
                dst = out / "photos-debian" / wanted[member.name]
                dst.parent.mkdir(parents=True, exist_ok=True)
                image = Image.open(io.BytesIO(data))
                if image.mode == "RGBA":  # chicky_512.png: 0.4% of its pixels, at the border, partly transparent
                    image.convert("RGB").save(dst)  # the scorer compares RGB; its colour is kept as it is
                else:
                    dst.write_bytes(data)
                found.add(member.name)
                print(f"wrote {dst}")
        if missing := sorted(set(wanted) - found):
            raise SystemExit(f"{url}: not in the package: {', '.join(missing)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("data"))
    ap.add_argument("--debian-only", action="store_true", help="write data/photos-debian alone")
    ap.add_argument("--debs", type=Path, help="a folder holding the two .deb files, instead of downloading them")
    args = ap.parse_args()
    if not args.debian_only:
        copy_pypi_photos(args.out)
    copy_debian_photos(args.out, args.debs)


def copy_pypi_photos(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cache: dict[str, Path] = {}
        for spec, member, folder, name in SOURCES:
            if spec not in cache:
                cache[spec] = download(spec, Path(tmp) / str(len(cache)))
            data = read_member(cache[spec], member)
            dst = out / folder / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if member.endswith("face.dat"):  # bz2-compressed raw RGB, 768 x 1024
                pixels = np.frombuffer(bz2.decompress(data), dtype=np.uint8).reshape(768, 1024, 3)
                Image.fromarray(pixels, "RGB").save(dst)
            else:
                dst.write_bytes(data)
            print(f"wrote {dst}")


if __name__ == "__main__":
    main()
