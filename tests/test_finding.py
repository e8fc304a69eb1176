import pytest
from PIL import Image

from colorcli.errors import InputError
from colorcli.finding import find_images, looks_like_image
from colorcli.images import load_rgb
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


def test_a_file_without_a_suffix_is_an_image_by_its_first_bytes(tmp_path):
    colour_image(8, 8).save(tmp_path / "scan001", format="PNG")
    (tmp_path / "notes").write_text("hello")
    assert looks_like_image(tmp_path / "scan001") and not looks_like_image(tmp_path / "notes")


def test_a_huge_scan_without_a_suffix_is_still_an_image_to_a_glob(tmp_path):
    Image.new("L", (14_000, 14_000)).save(tmp_path / "bomb_scan", format="PNG")  # over Pillow's own limit
    assert looks_like_image(tmp_path / "bomb_scan")
    with pytest.raises(InputError, match="over the limit"):
        load_rgb(tmp_path / "bomb_scan", max_pixels=100_000_000)


def test_folders_take_mpo_files(tmp_path):
    colour_image(16, 16).save(tmp_path / "stereo.mpo", format="JPEG")  # an MPO's first picture is a JPEG
    assert [p.name for p in find_images(tmp_path)] == ["stereo.mpo"]
