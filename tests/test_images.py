import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from rich.console import Console

from colorcli.batch import plan_jobs
from colorcli.cli.colorize import run_batch
from colorcli.errors import InputError
from colorcli.finding import find_images
from colorcli.images import load_image, load_rgb, to_gray8
from colorcli.runner import colorize_file
from colorcli.tiling import (
    ColorizeOptions,
)
from helpers import colour_image, luma, mode_image


def test_16bit_keeps_its_range():
    arr = (np.linspace(0, 65535, 64 * 16).reshape(16, 64)).astype(np.uint16)
    im = Image.fromarray(arr)
    g = np.asarray(to_gray8(im))
    assert g.min() == 0 and g.max() == 255


def test_load_rgb_reads_every_mode_as_8_bit_rgb_and_names_bad_files(tmp_path):
    ramp = (np.arange(40 * 30, dtype=np.uint16).reshape(30, 40) * 50).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    colour_image(40, 30).convert("CMYK").save(tmp_path / "cmyk.jpg")
    colour_image(40, 30).convert("P").save(tmp_path / "p.png")
    for name in ("g16.png", "cmyk.jpg", "p.png"):
        im = load_rgb(tmp_path / name)
        assert im.mode == "RGB" and im.size == (40, 30) and 10 < np.asarray(im).std(), name
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="bad.png: not a readable image"):
        load_rgb(tmp_path / "bad.png")
    with pytest.raises(InputError, match=r"over the limit of 100 \(a decompression bomb\?\)$"):
        load_rgb(tmp_path / "p.png", max_pixels=100)  # training and eval have no --max-pixels to suggest


def test_load_rgb_turns_photos_upright_by_their_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view"
    colour_image(60, 20).save(tmp_path / "sideways.jpg", exif=exif)
    assert load_rgb(tmp_path / "sideways.jpg").size == (20, 60)


def test_iphone_heic_photos_are_read_with_the_plugin(tmp_path):
    pytest.importorskip("pillow_heif")
    from colorcli.finding import plugin_formats

    assert "HEIF" in plugin_formats()
    colour_image(40, 30).save(tmp_path / "IMG_0001.HEIC", format="HEIF")
    assert [p.name for p in find_images(tmp_path)] == ["IMG_0001.HEIC"]
    assert load_rgb(tmp_path / "IMG_0001.HEIC").size == (40, 30)


def test_heic_photos_through_a_glob(tmp_path):
    pytest.importorskip("pillow_heif")
    from colorcli.batch import plan_jobs

    colour_image(40, 30).save(tmp_path / "IMG_0002.HEIC", format="HEIF")
    assert [j.src.name for j in plan_jobs([tmp_path / "*.HEIC"], tmp_path / "out")] == ["IMG_0002.HEIC"]


def test_without_pillow_heif_installed_heic_is_left_out_saying_how_to_read_it(tmp_path):
    import subprocess
    import sys

    (tmp_path / "ph").mkdir()
    (tmp_path / "ph" / "IMG_1.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (tmp_path / "ph" / "scan.png").write_bytes(b"")
    colour_image(8, 8).save(tmp_path / "ph" / "scan.png")
    script = f"""
import sys
sys.modules["pillow_heif"] = None  # as if not installed
from pathlib import Path
from colorcli.errors import InputError
from colorcli.images import load_rgb
from colorcli.batch import plan_jobs
ph = Path({str(tmp_path / "ph")!r})
for inputs in ([ph], [ph / "*"]):
    notes = []
    jobs = plan_jobs(inputs, ph.parent / "out", notes=notes)
    print([j.src.name for j in jobs], notes)
try:
    load_rgb(ph / "IMG_1.HEIC")
except InputError as e:
    print(e)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert lines[0].startswith("['scan.png']") and "1 HEIC photo(s) left out: pip install" in lines[0]
    assert lines[1].startswith("['scan.png']") and "1 HEIC photo(s) left out" in lines[1]
    assert "HEIC photos need a plugin" in lines[2]


def test_without_the_plugin_heic_photos_are_named_with_how_to_read_them(tmp_path, monkeypatch):
    import colorcli.finding as finding
    from colorcli.batch import plan_jobs

    monkeypatch.setattr(finding, "plugin_formats", lambda: frozenset())
    monkeypatch.setattr(finding, "image_suffixes", lambda: frozenset({".png"}))
    (tmp_path / "phone").mkdir()
    (tmp_path / "phone" / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")  # not decodable here
    with pytest.raises(InputError, match="HEIC photos need a plugin: pip install 'colorcli\\[heic\\]'"):
        load_rgb(tmp_path / "phone" / "IMG_0001.HEIC")
    jobs = plan_jobs([tmp_path / "phone", tmp_path / "phone" / "IMG_0001.HEIC"], tmp_path / "out")
    assert "1 HEIC photo(s) left out: pip install" in jobs[0].error
    colour_image(8, 8).save(tmp_path / "phone" / "scan.png")
    notes: list[str] = []
    plan_jobs([tmp_path / "phone"], tmp_path / "out", notes=notes)
    assert any("1 HEIC photo(s) left out" in n for n in notes)


# ---- colorize's input and results: alpha, ICC, EXIF, formats, damaged files


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "P-transparent", "I;16", "RGB", "RGBA", "CMYK"])
def test_every_mode_gives_full_size_colour_with_input_luma(tmp_path, tiny_model, mode):
    src = tmp_path / f"in {mode.replace(';', '')}.{'tif' if mode in ('CMYK', 'I;16') else 'png'}"
    mode_image(mode).save(src)
    dst = tmp_path / "out.png"
    loaded = colorize_file(tiny_model, src, dst, ColorizeOptions())
    out = Image.open(dst)
    assert out.size == (45, 37)
    expected_gray = np.asarray(loaded.gray, dtype=np.int16)
    off = np.abs(luma(out) - expected_gray)
    assert off.max() <= 1 and off.mean() <= 0.05  # exact but for rounding where a colour was out of gamut
    has_alpha = mode in ("LA", "RGBA", "P-transparent")
    assert (out.mode == "RGBA") == has_alpha
    if mode == "I;16":
        original = np.asarray(colour_image(45, 37, seed=1).convert("L"), dtype=np.int16)
        assert np.abs(expected_gray - original).max() <= 1  # tonal range kept, not clipped or darkened


def test_exif_orientation_is_applied(tmp_path, tiny_model):
    src = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    colour_image(60, 20).save(src, exif=exif.tobytes())
    dst = tmp_path / "out.png"
    colorize_file(tiny_model, src, dst, ColorizeOptions())
    assert Image.open(dst).size == (20, 60)


def test_icc_profile_is_kept(tmp_path, tiny_model):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = tmp_path / "p.jpg"
    colour_image(40, 40).save(src, icc_profile=icc)
    dst = tmp_path / "out.png"
    colorize_file(tiny_model, src, dst, ColorizeOptions())
    assert Image.open(dst).info.get("icc_profile") == icc


def test_bad_files_name_the_file_and_the_reason(tmp_path):
    cases = {
        "empty.jpg": b"",
        "text.png": b"hello, not an image",
        "truncated.png": None,
    }
    good = tmp_path / "good.png"
    colour_image(64, 64).save(good)
    for name, blob in cases.items():
        p = tmp_path / name
        p.write_bytes(good.read_bytes()[:100] if blob is None else blob)
        with pytest.raises(InputError, match=name):
            load_image(p)
    (tmp_path / "folder.jpg").mkdir()
    with pytest.raises(InputError, match="directory"):
        load_image(tmp_path / "folder.jpg")


def test_decompression_bomb_is_refused_with_the_option_to_raise(tmp_path):
    p = tmp_path / "big.png"
    Image.new("L", (400, 300)).save(p)
    with pytest.raises(InputError, match="--max-pixels"):
        load_image(p, max_pixels=10_000)
    assert load_image(p, max_pixels=120_000).gray.size == (400, 300)


def test_pillow_limit_does_not_override_a_raised_max_pixels(tmp_path, monkeypatch):
    p = tmp_path / "wide.png"
    Image.new("L", (300, 200)).save(p)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow alone would call this a bomb
    assert load_image(p, max_pixels=100_000).gray.size == (300, 200)
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_cmyk_profile_is_not_attached_to_rgb_output(tmp_path, tiny_model):
    from colorcli.images import _rgb_profile

    fake_cmyk = bytes(16) + b"CMYK" + bytes(108)
    assert _rgb_profile(fake_cmyk) is None
    assert _rgb_profile(bytes(16) + b"RGB " + bytes(108)) is not None


def _gray_psd(path: Path, gray: np.ndarray) -> None:
    """A flat 8-bit grayscale Photoshop file (no layers, raw image data), as Photoshop writes one."""
    h, w = gray.shape
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 1, h, w, 8, 1)  # version 1, 1 channel, depth 8, mode gray
    sections = struct.pack(">III", 0, 0, 0)  # colour mode data, image resources, layers: all empty
    path.write_bytes(header + sections + struct.pack(">H", 0) + gray.astype(np.uint8).tobytes())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_uncompressed_tiff_is_turned_upright_by_its_orientation_tag(tmp_path, orientation):
    """Pillow's own raw-TIFF decoder garbles orientations 5 to 8 (13.0); libtiff reads them."""
    stored = (np.arange(40 * 20).reshape(20, 40) % 251).astype(np.uint8)  # (H, W), every pixel told apart
    upright = {
        1: stored,
        2: np.fliplr(stored),
        3: np.rot90(stored, 2),
        4: np.flipud(stored),
        5: stored.T,
        6: np.rot90(stored, -1),
        7: np.rot90(stored, 2).T,
        8: np.rot90(stored, 1),
    }[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / "scan.tif"
    Image.fromarray(stored).save(p, exif=exif)  # uncompressed
    assert np.array_equal(np.asarray(load_image(p).gray), upright)
    assert np.array_equal(np.asarray(load_rgb(p).convert("L")), upright)
    pages = tmp_path / "pages.tif"  # a second page: counting pages set the tiles up again, without libtiff
    Image.fromarray(stored).save(pages, exif=exif, save_all=True, append_images=[Image.fromarray(stored)])
    assert np.array_equal(np.asarray(load_image(pages).gray), upright)


def test_photoshop_file_is_read_from_its_composite(tmp_path):
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5  # (H, W)
    p = tmp_path / "scan.psd"
    _gray_psd(p, gray)
    loaded = load_image(p)
    assert np.array_equal(np.asarray(loaded.gray), gray)
    assert loaded.note is None


def test_jpeg_with_a_second_picture_gets_no_frames_note(tmp_path):
    """Ultra HDR phone photos carry a gain map as a second MPO picture: not a second photo."""
    p = tmp_path / "phone.jpg"
    colour_image(32, 24).save(p, format="MPO", save_all=True, append_images=[colour_image(16, 12, seed=1)])
    assert Image.open(p).format == "MPO" and Image.open(p).n_frames == 2
    loaded = load_image(p)
    assert loaded.gray.size == (32, 24)
    assert loaded.note is None


def test_animated_gif_uses_the_first_frame(tmp_path):
    frames = [colour_image(20, 20, seed=i).convert("P") for i in range(3)]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:])
    loaded = load_image(p)
    assert "first of its 3 frames" in loaded.note
    for cut in (0.3, 0.6, 0.9):  # truncated animations fail cleanly, whatever Pillow raises inside
        q = tmp_path / f"cut{cut}.gif"
        q.write_bytes(p.read_bytes()[: int(len(p.read_bytes()) * cut)])
        try:
            load_image(q)
        except InputError as e:
            assert q.name in str(e)


MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16"]


FORMATS = {"png": "PNG", "jpg": "JPEG", "tif": "TIFF", "bmp": "BMP", "webp": "WEBP", "gif": "GIF"}


def encode(w: int, h: int, mode: str, ext: str) -> bytes:
    """The image in that format, in its mode where the format can store it, else as RGB."""
    im = mode_image(mode, w, h)
    buf = io.BytesIO()
    try:
        im.save(buf, format=FORMATS[ext])
    except (OSError, KeyError, ValueError):
        buf = io.BytesIO()
        im.convert("RGB").save(buf, format=FORMATS[ext])
    return buf.getvalue()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    w=st.integers(1, 70),
    h=st.integers(1, 70),
    mode=st.sampled_from(MODES),
    ext=st.sampled_from(sorted(FORMATS)),
    cut=st.one_of(st.none(), st.floats(0.0, 1.0)),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(1, 255)), max_size=3),
)
def test_property_valid_images_work_invalid_ones_fail_cleanly(tmp_path, tiny_model, w, h, mode, ext, cut, flips):
    blob = bytearray(encode(w, h, mode, ext))
    for pos, xor in flips:
        blob[min(int(pos * len(blob)), len(blob) - 1)] ^= xor
    if cut is not None:
        blob = blob[: int(cut * len(blob))]
    src = tmp_path / f"case.{ext}"
    src.write_bytes(bytes(blob))
    dst = tmp_path / "out.png"
    dst.unlink(missing_ok=True)
    try:
        loaded = colorize_file(tiny_model, src, dst, ColorizeOptions())
    except InputError as e:
        assert "case." in str(e) and "\n" not in str(e)
        assert not dst.exists()
        return
    out = Image.open(dst)
    assert out.size == loaded.gray.size
    assert np.abs(luma(out) - np.asarray(loaded.gray, dtype=np.int16)).mean() <= 1.0
    if not flips and cut is None:
        assert out.size == (w, h)


@pytest.mark.parametrize(
    ("ext", "mean_off"), [(".png", 0.05), (".webp", 0.05), (".tif", 0.05), (".bmp", 0.05), (".jpg", 0.5)]
)
def test_every_output_format_keeps_the_input_luma(tmp_path, tiny_model, ext, mean_off):
    src = tmp_path / "photo.png"
    colour_image(96, 64).save(src)
    dst = tmp_path / f"out{ext}"
    assert run_batch(tiny_model, plan_jobs([src], dst), ColorizeOptions(saturation=4.0)).exit_code == 0
    diff = np.abs(luma(dst).astype(int) - luma(src).astype(int))
    assert diff.mean() <= mean_off, (ext, diff.mean())  # JPEG is lossy; the others are exact to rounding


@pytest.mark.parametrize("mode", ["L", "RGB", "I;16"])
def test_single_colour_transparency_survives_as_alpha(tmp_path, tiny_model, mode):
    base = colour_image(48, 40, seed=7)
    im = base.convert(mode) if mode != "I;16" else Image.fromarray(np.asarray(base.convert("L"), np.uint16) * 257)
    key = np.asarray(im).flat[0]
    key = int(key) if mode != "RGB" else tuple(int(v) for v in np.asarray(im)[0, 0])
    src = tmp_path / f"t_{mode.replace(';', '')}.png"
    im.save(src, transparency=key)
    dst = tmp_path / "out.png"
    assert run_batch(tiny_model, plan_jobs([src], dst), ColorizeOptions()).exit_code == 0
    out = Image.open(dst)
    assert out.mode == "RGBA"
    alpha = np.asarray(out.getchannel("A"))
    assert alpha[0, 0] == 0 and (alpha == 255).mean() > 0.5


def test_exif_too_long_for_a_jpeg_is_left_out_with_a_note(tmp_path, tiny_model, capsys):
    exif = Image.Exif()
    exif[0x010E] = "x" * 70_000  # ImageDescription: over the 64 KB a JPEG holds
    src = tmp_path / "big.png"
    colour_image(40, 40).save(src, exif=exif)
    dst = tmp_path / "big.jpg"
    report = run_batch(tiny_model, plan_jobs([src], dst), ColorizeOptions(), as_json=True)
    assert report.exit_code == 0 and dst.exists()
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["status"] == "ok" and "EXIF left out" in record["note"]
    assert "exif" not in Image.open(dst).info


def test_malformed_exif_is_left_out_of_a_tiff_and_the_batch_goes_on(tmp_path, tiny_model, capsys, recwarn):
    """Pillow's TIFF writer parses the EXIF it stores; a malformed block made it raise mid-batch."""
    bad = tmp_path / "bad.jpg"
    colour_image(40, 30).save(bad, exif=b"Exif\x00\x00garbagegarbage")
    assert Image.open(bad).info["exif"].endswith(b"garbage")
    good = tmp_path / "good.jpg"
    colour_image(40, 30, seed=1).save(good)
    report = run_batch(
        tiny_model,
        plan_jobs([bad, good], tmp_path / "out", fmt="tif", output_is_dir=True),
        ColorizeOptions(),
        as_json=True,
    )
    assert report.exit_code == 0
    records = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["status"] for r in records] == ["ok", "ok"]
    assert "EXIF left out: it is malformed" in records[0]["note"]
    assert Image.open(tmp_path / "out" / "bad.tif").size == (40, 30)
    assert not [w for w in recwarn if "EXIF" in str(w.message)]


def test_exif_the_writer_breaks_on_is_left_out_and_the_photo_is_written(tmp_path, tiny_model, capsys, monkeypatch):
    """EXIF whose top table parses can still break the TIFF writer on its inner ones (a fuzzer found 64 of 3,000)."""
    import struct

    Image.init()
    real = Image.SAVE["TIFF"]

    def picky(im, fp, filename):
        if im.encoderinfo.get("exif"):
            raise struct.error("unpack requires a buffer of 12 bytes")
        return real(im, fp, filename)

    monkeypatch.setitem(Image.SAVE, "TIFF", picky)
    exif = Image.Exif()
    exif[0x010E] = "a scanned print"
    src = tmp_path / "scan.jpg"
    colour_image(40, 30).save(src, exif=exif)
    report = run_batch(tiny_model, plan_jobs([src], tmp_path / "scan.tif"), ColorizeOptions(), as_json=True)
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report.exit_code == 0 and record["status"] == "ok", record
    assert "EXIF left out: the TIFF writer could not encode it" in record["note"]
    assert Image.open(tmp_path / "scan.tif").size == (40, 30)


def test_a_transparent_colour_no_pixel_has_gives_no_alpha(tmp_path, tiny_model):
    src = tmp_path / "key.png"
    Image.fromarray(np.full((30, 40), 120, np.uint8)).save(src, transparency=7)
    dst = tmp_path / "out.png"
    assert run_batch(tiny_model, plan_jobs([src], dst), ColorizeOptions()).exit_code == 0
    assert Image.open(dst).mode == "RGB"


def test_transparency_a_format_cannot_hold_is_left_out_with_a_note(tmp_path, tiny_model, capsys):
    src = tmp_path / "logo.png"
    colour_image(40, 40).convert("RGBA").save(src)
    jobs = plan_jobs([src], tmp_path / "out", fmt="jpg", output_is_dir=True)
    run_batch(tiny_model, jobs, ColorizeOptions(), as_json=True)
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["status"] == "ok" and "transparency left out: JPEG has none" in record["note"]
    run_batch(tiny_model, plan_jobs([src], tmp_path / "out2.png"), ColorizeOptions(), as_json=True)
    assert "note" not in json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # PNG keeps it


def test_an_image_too_wide_for_its_format_fails_before_colorizing(tmp_path, tiny_model, monkeypatch):
    import colorcli.runner as runner_module

    Image.new("L", (17_000, 2), 128).save(tmp_path / "strip.png")
    colour_image(30, 30).save(tmp_path / "ok.png")
    seen = []
    real = runner_module.predict_chroma_many  # what reaches the model
    monkeypatch.setattr(runner_module, "predict_chroma_many", lambda m, g, o: seen.extend(g) or real(m, g, o))
    jobs = plan_jobs([tmp_path / "strip.png", tmp_path / "ok.png"], tmp_path / "out", fmt="webp")
    report = run_batch(tiny_model, jobs, ColorizeOptions())
    assert (report.done, report.failed) == (1, 1) and [g.shape for g in seen] == [(30, 30)]
    Image.new("L", (66_000, 1), 128).save(tmp_path / "line.png")
    jobs = plan_jobs([tmp_path / "line.png"], tmp_path / "line.jpg")
    report = run_batch(tiny_model, jobs, ColorizeOptions())
    assert report.failed == 1 and len(seen) == 1 and not (tmp_path / "line.jpg").exists()


def test_a_jpeg_with_damaged_data_is_colorized_with_a_note_naming_it(tmp_path, tiny_model, capsys):
    colour_image(200, 150, seed=1).save(tmp_path / "whole.jpg", quality=90)
    data = bytearray((tmp_path / "whole.jpg").read_bytes())
    data[len(data) // 2 : len(data) // 2 + 40] = bytes(40)  # the same damage fails a PNG
    (tmp_path / "damaged.jpg").write_bytes(data)
    assert load_image(tmp_path / "whole.jpg").note is None
    assert load_image(tmp_path / "damaged.jpg").note is None  # not asked to check
    assert load_image(tmp_path / "damaged.jpg", damage_check=True).note.startswith("corrupt JPEG data (")
    jobs = plan_jobs([tmp_path / "damaged.jpg", tmp_path / "whole.jpg"], tmp_path / "out")
    report = run_batch(tiny_model, jobs, ColorizeOptions(), as_json=True)
    assert (report.done, report.exit_code) == (2, 0)
    damaged, whole = (json.loads(x) for x in capsys.readouterr().out.splitlines())
    assert "part of the picture may be garbled" in damaged["note"] and "note" not in whole
    errors = Console(file=io.StringIO(), width=300)
    run_batch(tiny_model, jobs, ColorizeOptions(), overwrite=True, err_console=errors)
    [line] = errors.file.getvalue().splitlines()
    assert line.startswith(f"note: {tmp_path / 'damaged.jpg'}: corrupt JPEG data (")


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_a_damaged_picture_is_still_refused_where_its_exif_is_read(tmp_path, suffix):
    from colorcli.errors import InputError
    from colorcli.images import load_rgb

    path = tmp_path / f"bad.{suffix}"
    colour_image(256, 256, seed=4).save(path)
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 400):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="bad.* cannot decode image"):
        load_rgb(path)
