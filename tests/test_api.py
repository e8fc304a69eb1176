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


@pytest.mark.parametrize("mode", ["RGBa", "La"])
def test_premultiplied_modes_are_colorized_with_their_alpha(tiny_model, mode):
    rgba = colour_image(40, 30, seed=5).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((40, 30)).point(lambda v: max(v, 1)))
    straight = rgba if mode == "RGBa" else rgba.convert("LA")
    out = colorcli.colorize(straight.convert(mode), model=tiny_model)
    assert out.mode == "RGBA" and out.size == (40, 30)
    assert np.array_equal(np.asarray(out.getchannel("A")), np.asarray(straight.getchannel("A")))
    # the luma of the colour behind the alpha (premultiplying rounds it away where alpha is small)
    assert np.abs(luma(out) - luma(straight.convert(mode).convert(straight.mode))).max() <= 1


def test_a_palette_with_alpha_keeps_its_transparency(tmp_path, tiny_model):
    rgba = np.asarray(colour_image(40, 30, seed=6).convert("RGBA")).copy()
    rgba[:10, :, 3] = 0
    quantized = Image.fromarray(rgba).quantize()  # alpha in the palette, not in info["transparency"]
    out = colorcli.colorize(quantized, model=tiny_model)
    assert out.mode == "RGBA"
    assert (np.asarray(out.getchannel("A")) == 0).sum() == 400
    quantized.save(tmp_path / "p.png")
    assert np.array_equal(np.asarray(colorcli.colorize(tmp_path / "p.png", model=tiny_model)), np.asarray(out))


def test_a_malformed_exif_block_is_ignored_not_fatal(tmp_path, tiny_model):
    im = colour_image(40, 30, seed=7)
    im.save(tmp_path / "x.png", exif=b"garbage-garbage")
    assert colorcli.colorize(tmp_path / "x.png", model=tiny_model).size == (40, 30)
    loaded = Image.open(tmp_path / "x.png")
    loaded.load()
    loaded.info["exif"] = b"Exif\x00\x00garbage-garbage"
    assert colorcli.colorize(loaded, model=tiny_model).size == (40, 30)


@pytest.mark.parametrize("size", [(0, 0), (0, 5), (5, 0)])
def test_an_image_without_pixels_is_an_input_error(tiny_model, size):
    from colorcli.errors import InputError

    with pytest.raises(InputError, match="no pixels"):
        colorcli.colorize(Image.new("L", size), model=tiny_model)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"saturation": 1e38}, UsageError, "saturation must be a number from 0 to 1,000, not 1e"),
        ({"saturation": "1.2"}, UsageError, "not '1.2'"),
        ({"saturation": None}, UsageError, "not None"),
        ({"scale": "96"}, UsageError, "not '96'"),
        ({"model": 5}, TypeError, "colorize's model is .* not int"),
        ({"saturation": True}, UsageError, "not True"),
        ({"max_pixels": "1000"}, UsageError, "max_pixels must be a whole number of pixels, 1 or more, not '1000'"),
        ({"max_pixels": 0}, UsageError, "max_pixels must be .* not 0"),
        ({"max_pixels": 1.5}, UsageError, "max_pixels must be .* not 1.5"),
    ],
)
def test_wrong_option_values_and_types_name_the_option(tiny_model, options, error, message):
    with pytest.raises(error, match=message):
        colorcli.colorize(colour_image(8, 8, seed=1), **{"model": tiny_model, **options})


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_a_model_in_another_precision_colorizes(dtype):
    import torch

    image = colour_image(50, 40, seed=8)
    model = colorcli.load_model("photo")
    reference = np.asarray(colorcli.colorize(image, model=model), dtype=int)
    out = colorcli.colorize(image, model=model.to(getattr(torch, dtype)))
    assert np.abs(np.asarray(out, dtype=int) - reference).max() <= 2


def test_a_model_in_training_mode_colorizes_as_in_eval_mode_and_is_left_so(tiny_model):
    import torch

    image = colour_image(50, 40, seed=9)
    reference = np.asarray(colorcli.colorize(image, model=tiny_model))
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    tiny_model.train()
    try:
        assert np.array_equal(np.asarray(colorcli.colorize(image, model=tiny_model)), reference)
        assert tiny_model.training
        assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())
    finally:
        tiny_model.eval()


def test_the_pixel_limit_of_a_path_is_the_callers_to_raise(tmp_path, tiny_model):
    from colorcli.errors import InputError

    colour_image(40, 30, seed=2).save(tmp_path / "x.png")
    with pytest.raises(InputError, match=r"over the limit of 1,000 .*colorize\(max_pixels=\.\.\.\)"):
        colorcli.colorize(tmp_path / "x.png", model=tiny_model, max_pixels=1000)
    assert colorcli.colorize(tmp_path / "x.png", model=tiny_model, max_pixels=1200).size == (40, 30)


def test_the_error_base_class_is_part_of_the_api():
    from colorcli.errors import InputError

    assert issubclass(InputError, colorcli.ColorcliError) and "ColorcliError" in colorcli.__all__
