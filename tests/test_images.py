import numpy as np
import pytest
from PIL import Image

from colorcli.errors import InputError
from colorcli.images import find_images, load_rgb, looks_like_image, to_gray8
from helpers import colour_image


def test_find_images_any_case_and_nested(tmp_path):
    (tmp_path / "x" / "y").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "x" / "y" / "A B.JPG")
    (tmp_path / "dir.png").mkdir()
    assert [p.name for p in find_images(tmp_path)] == ["A B.JPG"]


def test_folders_find_every_photo_format_pillow_reads_and_nothing_else(tmp_path):
    img = colour_image(32, 32)
    for name in ("a.png", "b.PGM", "c.tga", "d.jpe", "e.tif"):
        (img.convert("L") if name.lower().endswith(".pgm") else img).save(tmp_path / name)
    for name in ("clip.mpg", "notes.txt", "._a.png", "scan.eps"):
        (tmp_path / name).write_bytes(b"not a photo")
    assert [p.name for p in find_images(tmp_path)] == ["a.png", "b.PGM", "c.tga", "d.jpe", "e.tif"]


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


def test_a_file_without_a_suffix_is_an_image_by_its_first_bytes(tmp_path):
    colour_image(8, 8).save(tmp_path / "scan001", format="PNG")
    (tmp_path / "notes").write_text("hello")
    assert looks_like_image(tmp_path / "scan001") and not looks_like_image(tmp_path / "notes")


def test_load_rgb_turns_photos_upright_by_their_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view"
    colour_image(60, 20).save(tmp_path / "sideways.jpg", exif=exif)
    assert load_rgb(tmp_path / "sideways.jpg").size == (20, 60)


def test_a_huge_scan_without_a_suffix_is_still_an_image_to_a_glob(tmp_path):
    Image.new("L", (14_000, 14_000)).save(tmp_path / "bomb_scan", format="PNG")  # over Pillow's own limit
    assert looks_like_image(tmp_path / "bomb_scan")
    with pytest.raises(InputError, match="over the limit"):
        load_rgb(tmp_path / "bomb_scan", max_pixels=100_000_000)


def test_iphone_heic_photos_are_read_with_the_plugin(tmp_path):
    pytest.importorskip("pillow_heif")
    from colorcli.images import plugin_formats

    assert "HEIF" in plugin_formats()
    colour_image(40, 30).save(tmp_path / "IMG_0001.HEIC", format="HEIF")
    assert [p.name for p in find_images(tmp_path)] == ["IMG_0001.HEIC"]
    assert load_rgb(tmp_path / "IMG_0001.HEIC").size == (40, 30)


def test_heic_photos_through_a_glob(tmp_path):
    pytest.importorskip("pillow_heif")
    from colorcli.inference import plan_jobs

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
from colorcli.inference import plan_jobs
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
    import colorcli.images as images
    from colorcli.inference import plan_jobs

    monkeypatch.setattr(images, "plugin_formats", lambda: frozenset())
    monkeypatch.setattr(images, "image_suffixes", lambda: frozenset({".png"}))
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


def test_folders_take_mpo_files(tmp_path):
    colour_image(16, 16).save(tmp_path / "stereo.mpo", format="JPEG")  # an MPO's first picture is a JPEG
    assert [p.name for p in find_images(tmp_path)] == ["stereo.mpo"]
