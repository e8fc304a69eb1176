"""The Python API: colorcli.colorize and colorcli.load_model."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import colorcli
from colorcli.errors import UsageError
from helpers import colour_image


def luma(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB").convert("L"), dtype=int)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16", "LA"])
def test_colorize_takes_any_mode_and_keeps_size_and_luma(tiny_model, mode):
    base = colour_image(70, 45, seed=3)
    if mode == "I;16":
        im = Image.fromarray(np.asarray(base.convert("L"), np.uint16) * 257)
        expected = np.asarray(base.convert("L"), dtype=int)
    else:
        im = base.convert(mode)
        expected = luma(im)
    out = colorcli.colorize(im, model=tiny_model)
    assert out.size == im.size
    assert out.mode == ("RGBA" if mode in ("RGBA", "LA") else "RGB")
    assert np.abs(luma(out) - expected).max() <= 1


def test_colorize_reads_a_path_and_applies_exif_orientation(tmp_path, tiny_model):
    im = colour_image(60, 30, seed=1)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    im.save(tmp_path / "x.jpg", exif=exif)
    out = colorcli.colorize(tmp_path / "x.jpg", model=tiny_model)
    assert out.size == (30, 60)
    assert colorcli.colorize(str(tmp_path / "x.jpg"), model=tiny_model).size == (30, 60)


def test_colorize_refuses_what_is_not_an_image(tiny_model):
    with pytest.raises(TypeError, match="PIL image or a path"):
        colorcli.colorize(np.zeros((4, 4)), model=tiny_model)


def test_load_model_by_name_and_by_path(tiny_checkpoint):
    assert colorcli.load_model("cifar10").config.tile == 32
    assert colorcli.load_model(tiny_checkpoint).config.width == 4
    with pytest.raises(UsageError, match="no shipped model named 'nope'"):
        colorcli.load_model("nope")


def test_import_colorcli_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, colorcli; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_colorize_imports_nothing_of_training(tmp_path):
    """A colorize call loads neither training, datasets nor eval, nor any colorcli module that uses
    torch.distributed (torch itself may load it)."""
    import subprocess
    import sys

    from helpers import REPORT_TRAINING_MODULES

    colour_image(64, 48).save(tmp_path / "in.png")
    code = (
        "import colorcli\nfrom PIL import Image\n"
        f"colorcli.colorize(Image.new('L', (64, 48), 128)); colorcli.colorize({str(tmp_path / 'in.png')!r})\n"
        + REPORT_TRAINING_MODULES
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] []"


def test_colorize_of_a_jpeg_path_starts_no_checking_process(tmp_path):
    """The damage check is the CLI's note; the API has none to give, so it neither checks nor
    starts a process (which would re-run a script that lacks an ``if __name__`` guard)."""
    import subprocess
    import sys

    colour_image(64, 48).save(tmp_path / "in.jpg")
    code = (
        "import multiprocessing, sys, colorcli\n"
        f"colorcli.colorize({str(tmp_path / 'in.jpg')!r})\n"
        "print('colorcli.jpeg_check' in sys.modules, multiprocessing.active_children())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False []"


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_a_transparent_colour_is_kept_from_an_image_as_from_its_file(tmp_path, tiny_model, mode):
    im = colour_image(24, 16, seed=3).convert(mode)
    key = int(np.asarray(im).flat[0]) if mode == "L" else tuple(int(v) for v in np.asarray(im)[0, 0])
    path = tmp_path / "keyed.png"
    im.save(path, transparency=key)
    from_path = colorcli.colorize(path, model=tiny_model)
    for opened in (Image.open(path), Image.open(path).copy()):  # as opened, and once loaded
        result = colorcli.colorize(opened, model=tiny_model)
        assert result.mode == "RGBA" == from_path.mode
        assert np.array_equal(np.asarray(result.getchannel("A")), np.asarray(from_path.getchannel("A")))
