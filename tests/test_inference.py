import io
import json
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from rich.console import Console

from colorcli.errors import InputError, UsageError
from colorcli.inference import (
    ColorizeOptions,
    _window,
    check_output_folders,
    colorize_file,
    colorize_gray,
    compose_chroma,
    compose_guided,
    guide_radius,
    guided_planes,
    load_image,
    plan_jobs,
    predict_chroma,
    run_jobs,
    working_size,
)
from helpers import colour_image


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


@pytest.mark.parametrize("size", [(1, 1), (3, 500), (2000, 17), (33, 65), (100, 100)])
def test_extreme_shapes(tiny_model, size):
    gray = colour_image(*size, seed=2).convert("L")
    out = colorize_gray(tiny_model, gray, ColorizeOptions())
    assert out.size == size and out.mode == "RGB"
    assert np.abs(luma(out) - np.asarray(gray, dtype=np.int16)).mean() <= 1.0


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


def test_tiles_blend_without_seams():
    """A model whose output depends on the tile's position must still give a smooth field."""

    class TileId(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))
            self.calls = 0

        def forward(self, y):
            b = y.shape[0]
            vals = torch.arange(self.calls, self.calls + b, dtype=torch.float32) * 10  # (B,) a level per tile
            self.calls += b
            return vals.view(b, 1, 1, 1).expand(b, 2, *y.shape[-2:])  # (B, 2, H, W)

    chroma = predict_chroma(TileId(), np.zeros((80, 80), np.uint8), ColorizeOptions(overlap=16))
    assert chroma.shape == (2, 80, 80)
    # Neighbouring pixels never jump by more than a small share of a tile-to-tile step.
    assert chroma.diff(dim=1).abs().max() < 5 and chroma.diff(dim=2).abs().max() < 5


def test_window_is_smooth_and_positive():
    w = _window(32, 16)
    assert w.min() > 0 and 0.99 < w.max() <= 1
    assert torch.allclose(w, w.T)


def test_working_size_never_enlarges():
    assert working_size(4000, 3000, 64) == (85, 64)
    assert working_size(4000, 3000, 96) == (128, 96)
    assert working_size(20, 10, 64) == (20, 10)
    assert working_size(3, 500, 64) == (3, 500)


def test_saturation_scales_chroma(tiny_model):
    g = np.asarray(colour_image(40, 40).convert("L")).copy()
    a = predict_chroma(tiny_model, g, ColorizeOptions(saturation=1.0))
    b = predict_chroma(tiny_model, g, ColorizeOptions(saturation=2.0))
    assert torch.allclose(b, 2 * a, atol=1e-4)


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
    from colorcli.inference import _rgb_profile

    fake_cmyk = bytes(16) + b"CMYK" + bytes(108)
    assert _rgb_profile(fake_cmyk) is None
    assert _rgb_profile(bytes(16) + b"RGB " + bytes(108)) is not None


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


# ---- planning and batches


def test_plan_single_file_and_folder_naming(tmp_path):
    a = tmp_path / "in" / "photo.jpg"
    b = tmp_path / "in" / "photo.png"
    c = tmp_path / "in" / "other one.TIFF"
    a.parent.mkdir()
    for p in (a, b, c):
        colour_image(8, 8).save(p)
    single = plan_jobs([a], tmp_path / "x.webp")
    assert [j.dst.name for j in single] == ["x.webp"]
    jobs = plan_jobs([tmp_path / "in"], tmp_path / "out")
    names = sorted(j.dst.name for j in jobs)
    assert names == ["other one.png", "photo_jpg.png", "photo_png.png"]
    with pytest.raises(UsageError):
        plan_jobs([], tmp_path / "out")


def test_same_names_in_different_folders_never_collide(tmp_path):
    for sub in ("a", "b", "c"):
        (tmp_path / "in" / sub).mkdir(parents=True)
        colour_image(8, 8).save(tmp_path / "in" / sub / "photo.png")
    colour_image(8, 8).save(tmp_path / "in" / "c" / "photo.jpg")
    (tmp_path / "flat").mkdir()
    colour_image(8, 8).save(tmp_path / "flat" / "photo_png.png")
    colour_image(8, 8).save(tmp_path / "flat" / "photo.png")
    colour_image(8, 8).save(tmp_path / "flat" / "photo.jpg")
    jobs = plan_jobs(
        [tmp_path / "in" / "a", tmp_path / "in" / "b", tmp_path / "in" / "c", tmp_path / "flat"], tmp_path / "out"
    )
    dsts = [str(j.dst).lower() for j in jobs]
    assert len(dsts) == len(set(dsts)) == 7


def test_batch_goes_on_after_a_bad_file_and_skips_existing(tmp_path, tiny_model, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        colour_image(30 + i, 30).save(src / f"ok{i}.png")
    (src / "bad.jpg").write_bytes(b"nope")
    jobs = plan_jobs([src], tmp_path / "out")
    report = run_jobs(tiny_model, jobs, ColorizeOptions(), as_json=True)
    assert (report.done, report.failed, report.exit_code) == (3, 1, 1)
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {x["status"] for x in lines} == {"ok", "failed"}
    assert all({"input", "output", "status", "seconds"} <= set(x) for x in lines)
    assert not (tmp_path / "out" / "bad.png").exists()
    again = run_jobs(tiny_model, jobs, ColorizeOptions())
    assert again.skipped == 3
    assert run_jobs(tiny_model, jobs, ColorizeOptions(), overwrite=True).done == 3


def test_an_input_is_never_overwritten(tmp_path, tiny_model):
    p = tmp_path / "same.png"
    colour_image(16, 16).save(p)
    before = p.read_bytes()
    report = run_jobs(tiny_model, plan_jobs([p], p), ColorizeOptions(), overwrite=True)
    assert report.failed == 1
    assert p.read_bytes() == before


# ---- property-based: any size, mode and corruption gives either a right-sized image or a clean error


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


def test_the_models_tile_saturation_scales_photo_colour(tiny_model):
    from dataclasses import replace

    gray = (np.arange(48 * 40) % 251).astype(np.uint8).reshape(48, 40)
    plain = predict_chroma(tiny_model, gray, ColorizeOptions())
    tiny_model.config = replace(tiny_model.config, tile_saturation=1.5)
    boosted = predict_chroma(tiny_model, gray, ColorizeOptions(saturation=2.0))
    assert plain.abs().max() > 0
    assert torch.allclose(boosted, plain * 3.0, atol=1e-4)  # the model's factor times the option's
    small = (np.arange(32 * 32) % 251).astype(np.uint8).reshape(32, 32)  # one tile: the whole picture
    assert torch.allclose(
        predict_chroma(tiny_model, small, ColorizeOptions()),
        tiny_model(torch.from_numpy(small).float()[None, None])[0],
        atol=1e-4,
    )


def test_reruns_do_not_colorize_their_own_results(tmp_path, tiny_model):
    src = tmp_path / "in"
    src.mkdir()
    colour_image(20, 20).save(src / "a.png")
    for _ in range(2):
        jobs = plan_jobs([src], src / "out", recursive=True)
        assert [j.src.name for j in jobs] == ["a.png"]
        assert run_jobs(tiny_model, jobs, ColorizeOptions()).exit_code == 0
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*.png")) == ["a.png", "out/a.png"]
    with pytest.raises(UsageError, match="also the folder the input"):
        plan_jobs([src], src)
    # the same through a glob: its matches inside the output folder are earlier results, said in a note
    pattern = src / "**" / "*.png"
    notes: list[str] = []
    assert [j.src.name for j in plan_jobs([pattern], src / "out", notes=notes)] == ["a.png"]
    assert len(notes) == 1 and "left out 1 image(s) in the output folder" in notes[0]
    with pytest.raises(UsageError, match="also the folder the input"):  # -o the glob's own folder
        plan_jobs([src / "*.png"], src)
    # an output folder above the input folder leaves every input in
    sub = src / "sub"
    sub.mkdir()
    colour_image(20, 20).save(sub / "b.png")
    assert [j.src.name for j in plan_jobs([sub], src)] == ["b.png"]
    assert [j.src.name for j in plan_jobs([tmp_path / "in" / "sub" / "*.png"], src)] == ["b.png"]


def test_an_input_named_twice_is_colorized_once(tmp_path):
    colour_image(8, 8).save(tmp_path / "m.png")
    jobs = plan_jobs([tmp_path / "m.png", tmp_path / "m.png", tmp_path], tmp_path / "out")
    assert [(j.src.name, j.dst.name) for j in jobs] == [("m.png", "m.png")]
    [job] = plan_jobs([tmp_path / "m.png", tmp_path / "." / "m.png"], tmp_path / "x.png")
    assert job.dst == tmp_path / "x.png"  # one file, named twice: -o is still that file


def test_a_folder_without_images_is_reported_not_skipped(tmp_path, tiny_model):
    colour_image(8, 8).save(tmp_path / "m.png")
    (tmp_path / "looks.jpg").mkdir()
    jobs = plan_jobs([tmp_path / "looks.jpg", tmp_path / "m.png"], tmp_path / "out")
    report = run_jobs(tiny_model, jobs, ColorizeOptions())
    assert (report.done, report.failed, report.exit_code) == (1, 1, 1)
    with pytest.raises(UsageError, match="no input images found.*looks.jpg: is a folder with no images"):
        plan_jobs([tmp_path / "looks.jpg"], tmp_path / "out")


def test_a_trailing_slash_makes_the_output_a_folder_and_formats_are_named(tmp_path):
    colour_image(8, 8).save(tmp_path / "m.png")
    [job] = plan_jobs([tmp_path / "m.png"], tmp_path / "new", output_is_dir=True)
    assert job.dst == tmp_path / "new" / "m.png"
    with pytest.raises(UsageError, match="--format gif: cannot write this format; use one of png, jpg"):
        plan_jobs([tmp_path], tmp_path / "out", fmt="gif")


@pytest.mark.parametrize(
    ("ext", "mean_off"), [(".png", 0.05), (".webp", 0.05), (".tif", 0.05), (".bmp", 0.05), (".jpg", 0.5)]
)
def test_every_output_format_keeps_the_input_luma(tmp_path, tiny_model, ext, mean_off):
    src = tmp_path / "photo.png"
    colour_image(96, 64).save(src)
    dst = tmp_path / f"out{ext}"
    assert run_jobs(tiny_model, plan_jobs([src], dst), ColorizeOptions(saturation=4.0)).exit_code == 0
    diff = np.abs(luma(dst).astype(int) - luma(src).astype(int))
    assert diff.mean() <= mean_off, (ext, diff.mean())  # JPEG is lossy; the others are exact to rounding


def test_composed_rgb_has_exactly_the_given_luma_without_pillows_bias():
    rng = np.random.default_rng(0)
    y, cb, cr = (
        Image.fromarray(a.astype(np.uint8))
        for a in (
            rng.integers(30, 226, (64, 64)),
            np.clip(128 + rng.normal(0, 12, (64, 64)), 0, 255),
            np.clip(128 + rng.normal(0, 12, (64, 64)), 0, 255),
        )
    )
    pillow = Image.merge("YCbCr", (y, cb, cr)).convert("RGB")
    assert (luma(pillow) != np.asarray(y)).mean() > 0.2  # why colorcli does not use it
    chroma = torch.from_numpy(np.stack([np.asarray(cb), np.asarray(cr)]).astype(np.float32) - 128)  # (2, 64, 64)
    composed = compose_chroma(y, chroma)
    assert (luma(composed) == np.asarray(y)).all()
    truth = np.stack([np.asarray(cb), np.asarray(cr)]).astype(np.float32) - 128
    assert np.abs(_cbcr(composed) - truth).mean() < 1.0  # the chroma as given, to rounding


def _edge_photo(size: int, edge: int):
    """A gray (size, size) photo with a vertical edge at column ``edge`` and its true chroma, (2, size, size)."""
    y = np.where(np.arange(size) < edge, 70, 180).astype(np.uint8)[None].repeat(size, 0)  # (size, size)
    sign = np.where(np.arange(size) < edge, -1.0, 1.0).astype(np.float32)[None].repeat(size, 0)
    return y, np.stack([40 * sign, -30 * sign])  # (2, size, size)


def _cbcr(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("YCbCr"))[..., 1:].astype(np.float32).transpose(2, 0, 1) - 128  # (2, H, W)


def _working(gray: Image.Image, truth: np.ndarray, small: int):
    """The working-scale luma and the chroma a perfect model would predict there."""
    working = np.asarray(gray.resize((small, small), Image.Resampling.BOX))
    chroma = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(truth)[None], small)[0]  # (2, small, small)
    return working, chroma


@pytest.mark.parametrize("edge", [160, 165, 170, 171])  # on, and between, working-scale pixel boundaries
def test_guided_upsampling_puts_colour_edges_on_the_luma_edges(edge):
    y, truth = _edge_photo(320, edge)
    gray = Image.fromarray(y)
    working, chroma = _working(gray, truth, 96)
    near_edge = slice(edge - 12, edge + 12)
    errors = {}
    for radius in (0, 2):
        out = compose_guided(gray, guided_planes(working, chroma, radius, 1e-3))
        assert (luma(out) == y).all()
        errors[radius] = np.abs(_cbcr(out) - truth)[:, :, near_edge].mean()
    assert errors[2] < 0.45 * errors[0], errors  # bilinear smears colour across the edge; guided much less


def test_guided_upsampling_keeps_a_thin_line_beside_an_edge_on_its_own_side():
    y, truth = _edge_photo(320, 171)
    y[:, 162:164] = 235  # a bright wire 8 pixels left of the edge, on the Cb -40 side
    gray = Image.fromarray(y)
    working, chroma = _working(gray, truth, 96)
    out = _cbcr(compose_guided(gray, guided_planes(working, chroma, 2, 1e-3)))
    # The left side's hue (Cb < 0 < Cr), pulled toward gray into the gamut at luma 235; without
    # the local range the fitted slope of the edge flipped the wire's hue (Cb +4, Cr -4).
    assert out[0, :, 162:164].max() < 0 and out[1, :, 162:164].min() > 0


def test_guided_upsampling_keeps_flat_colour_flat_on_textured_luma():
    rng = np.random.default_rng(1)
    gray = Image.fromarray(rng.integers(60, 200, (200, 150)).astype(np.uint8))
    working = np.asarray(gray.resize((64, 48), Image.Resampling.BOX))
    chroma = torch.tensor([12.0, -20.0])[:, None, None].expand(2, 48, 64).contiguous()  # (2, 48, 64)
    out = _cbcr(compose_guided(gray, guided_planes(working, chroma, 2, 1e-3)))
    assert np.abs(out - np.array([12.0, -20.0])[:, None, None]).max() <= 1.0  # rounding only


@pytest.mark.parametrize(
    ("size", "small", "band_pixels"),
    [((37, 23), (7, 9), 1), ((37, 23), (7, 9), 50), ((301, 97), (90, 29), 1 << 20), ((5, 400), (1, 96), 7)],
)
def test_guided_composition_in_bands_equals_one_bilinear_pass(size, small, band_pixels):
    rng = np.random.default_rng(2)
    y = rng.integers(0, 256, size).astype(np.uint8)
    fit = rng.normal(0, 20, (4, *small)).astype(np.float32)
    mid = rng.normal(0, 20, (2, *small)).astype(np.float32)
    planes = torch.from_numpy(np.concatenate([fit, mid - 15, mid + 15]))  # (8, h, w): a, b, low, high
    banded = np.asarray(compose_guided(Image.fromarray(y), planes, band_pixels=band_pixels)).astype(int)
    up = torch.nn.functional.interpolate(planes[None], size=size, mode="bilinear", align_corners=False)[0]
    chroma = (up[0:2] * torch.from_numpy(y.astype(np.float32) / 255) + up[2:4]).clamp(up[4:6], up[6:8])
    whole = np.asarray(compose_chroma(Image.fromarray(y), chroma)).astype(int)
    assert np.abs(banded - whole).max() <= 1 and (banded != whole).mean() < 0.01


def test_guided_planes_match_a_pixel_by_pixel_guided_filter():
    rng = np.random.default_rng(6)
    h, w, r, eps = 9, 7, 2, 1e-3
    guide = rng.integers(0, 256, (h, w)).astype(np.uint8)
    chroma = rng.normal(0, 30, (2, h, w))
    luma = guide / 255.0

    def window(i: int, j: int) -> tuple[np.ndarray, np.ndarray]:  # edges replicated, as in the filter
        return np.clip(np.arange(i - r, i + r + 1), 0, h - 1), np.clip(np.arange(j - r, j + r + 1), 0, w - 1)

    slope, offset = np.zeros((2, h, w)), np.zeros((2, h, w))
    for i in range(h):
        for j in range(w):
            rows, cols = window(i, j)
            ll = luma[np.ix_(rows, cols)]
            for c in range(2):
                cc = chroma[c][np.ix_(rows, cols)]
                slope[c, i, j] = ((ll * cc).mean() - ll.mean() * cc.mean()) / (ll.var() + eps)
                offset[c, i, j] = cc.mean() - slope[c, i, j] * ll.mean()
    expected = np.zeros((4, h, w))
    for i in range(h):
        for j in range(w):
            rows, cols = window(i, j)
            for c in range(2):
                expected[c, i, j] = slope[c][np.ix_(rows, cols)].mean()
                expected[2 + c, i, j] = offset[c][np.ix_(rows, cols)].mean()
    planes = guided_planes(guide, torch.from_numpy(chroma.astype(np.float32)), r, eps).numpy()  # (8, h, w)
    assert np.allclose(planes[:4], expected, rtol=1e-3, atol=1e-2)
    lowest = np.array(
        [[[chroma[c][np.ix_(*window(i, j))].min() for j in range(w)] for i in range(h)] for c in range(2)]
    )
    assert np.allclose(planes[4:6], lowest, atol=1e-4)


class Checker(torch.nn.Module):
    """A model double whose chroma, a strong 8-pixel checkerboard, ignores the luma: smoothing shows at once."""

    def __init__(self) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        b, _, h, w = y.shape
        blocks = torch.arange(h)[:, None] // 8 + torch.arange(w)[None] // 8  # (h, w)
        sign = 1 - 2 * (blocks % 2).float()
        return (sign * torch.tensor([30.0, -25.0])[:, None, None]).expand(b, 2, h, w)  # (B, 2, H, W)


def _mid_gray(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(5)
    return Image.fromarray(rng.integers(100, 156, (height, width)).astype(np.uint8))  # keeps the colours in gamut


def test_a_photo_at_the_working_scale_gets_the_predicted_chroma_itself():
    gray = _mid_gray(80, 60)
    predicted = predict_chroma(Checker(), np.asarray(gray), ColorizeOptions())  # (2, 60, 80)
    out = _cbcr(colorize_gray(Checker(), gray, ColorizeOptions()))
    assert np.abs(out - predicted.numpy()).mean() < 1.0


def test_a_photo_just_larger_than_the_working_scale_is_not_smoothed_paler():
    strength = {
        side: np.abs(_cbcr(colorize_gray(Checker(), _mid_gray(side, side), ColorizeOptions()))).mean()
        for side in (96, 97, 120)
    }
    assert strength[96] > 20
    # Bilinear resampling alone costs up to 15% on so sharp a pattern; the filter at radius 2 would halve it.
    assert strength[97] > 0.85 * strength[96] and strength[120] > 0.85 * strength[96], strength


@pytest.mark.parametrize(
    ("enlargement", "radius"), [(1.0, 0), (1.01, 0), (1.49, 0), (1.5, 1), (1.99, 1), (2.0, 2), (31.0, 2)]
)
def test_the_guide_radius_grows_in_steps_with_the_enlargement(enlargement, radius):
    assert guide_radius(enlargement, 2) == radius


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("guide_radius", -1),
        ("guide_radius", 1.5),
        ("guide_eps", 0.0),
        ("guide_eps", -1e-3),
        ("overlap", -1),
        ("tile_batch", 0),
    ],
)
def test_colorize_options_are_checked(field, value):
    with pytest.raises(UsageError, match=field.replace("_", " ")):
        ColorizeOptions(**{field: value})


def test_the_overlap_must_fit_the_models_tile(tiny_model):
    assert ColorizeOptions(overlap=31).for_model(tiny_model).overlap == 31
    with pytest.raises(UsageError, match="overlap must be 0 to 31"):
        ColorizeOptions(overlap=32).for_model(tiny_model)


def test_tiles_scale_and_overlap_come_from_the_model():
    from colorcli.model import ModelConfig, build_model

    model = build_model(ModelConfig(width=4, depth=2, tile=64, scale=80, context=True)).eval()
    tiling = ColorizeOptions().for_model(model)
    assert (tiling.tile, tiling.overlap, tiling.scale, tiling.tiles_per_call) == (64, 32, 80, 16)
    assert ColorizeOptions(scale=50, overlap=8).for_model(model).scale == 50
    gray = Image.fromarray(np.random.default_rng(0).integers(0, 256, (120, 200), dtype=np.uint8))
    out = colorize_gray(model, gray, ColorizeOptions())
    assert out.size == gray.size and np.abs(luma(out).astype(int) - np.asarray(gray)).max() <= 1


@pytest.mark.parametrize("mode", ["L", "RGB", "I;16"])
def test_single_colour_transparency_survives_as_alpha(tmp_path, tiny_model, mode):
    base = colour_image(48, 40, seed=7)
    im = base.convert(mode) if mode != "I;16" else Image.fromarray(np.asarray(base.convert("L"), np.uint16) * 257)
    key = np.asarray(im).flat[0]
    key = int(key) if mode != "RGB" else tuple(int(v) for v in np.asarray(im)[0, 0])
    src = tmp_path / f"t_{mode.replace(';', '')}.png"
    im.save(src, transparency=key)
    dst = tmp_path / "out.png"
    assert run_jobs(tiny_model, plan_jobs([src], dst), ColorizeOptions()).exit_code == 0
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
    report = run_jobs(tiny_model, plan_jobs([src], dst), ColorizeOptions(), as_json=True)
    assert report.exit_code == 0 and dst.exists()
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["status"] == "ok" and "EXIF left out" in record["note"]
    assert "exif" not in Image.open(dst).info


def test_a_transparent_colour_no_pixel_has_gives_no_alpha(tmp_path, tiny_model):
    src = tmp_path / "key.png"
    Image.fromarray(np.full((30, 40), 120, np.uint8)).save(src, transparency=7)
    dst = tmp_path / "out.png"
    assert run_jobs(tiny_model, plan_jobs([src], dst), ColorizeOptions()).exit_code == 0
    assert Image.open(dst).mode == "RGB"


def test_globs_keep_images_without_an_image_suffix_and_allow_an_output_they_cannot_match(tmp_path):
    src = tmp_path / "scans"
    src.mkdir()
    colour_image(40, 40).save(src / "scan001", format="PNG")  # no suffix at all
    colour_image(40, 40).save(src / "a.jpg")
    (src / "notes.txt").write_text("not a photo")
    notes: list[str] = []
    jobs = plan_jobs([src / "*"], tmp_path / "out", notes=notes)
    assert sorted(j.src.name for j in jobs) == ["a.jpg", "scan001"] and "1 non-image" in notes[0]
    # '*.jpg' cannot match the .png results written beside the inputs, so that is allowed ...
    assert [j.dst.name for j in plan_jobs([src / "*.jpg"], src)] == ["a.png"]
    with pytest.raises(UsageError, match="also the folder"):  # ... but not where a rerun would find them
        plan_jobs([src / "*.jpg"], src, fmt="jpg")


def test_a_folder_with_glob_characters_in_its_name_is_taken_as_written(tmp_path):
    src = tmp_path / "scans [1950]"
    src.mkdir()
    colour_image(40, 40).save(src / "a.jpg")
    colour_image(40, 40).save(src / "b.png")
    jobs = plan_jobs([src / "*.jpg"], tmp_path / "out")
    assert [j.src.name for j in jobs] == ["a.jpg"]
    assert [j.src.name for j in plan_jobs([src], tmp_path / "out2")] == ["a.jpg", "b.png"]
    # the literal folder also counts for the output check: -o it with a matching glob is refused
    with pytest.raises(UsageError, match="also the folder"):
        plan_jobs([src / "*"], src)


def test_a_new_output_named_like_an_image_is_refused_for_several_inputs(tmp_path):
    for name in ("a", "b"):
        colour_image(40, 40).save(tmp_path / f"{name}.jpg")
    with pytest.raises(UsageError, match="names one image file, but 2 images"):
        plan_jobs([tmp_path / "a.jpg", tmp_path / "b.jpg"], tmp_path / "all.png")
    with pytest.raises(UsageError, match="a folder or glob"):
        plan_jobs([tmp_path / "a.*"], tmp_path / "one.png")
    colour_image(8, 8).save(tmp_path / "old.png")  # an existing file, too
    with pytest.raises(UsageError, match="names one image file"):
        plan_jobs([tmp_path / "a.jpg", tmp_path / "b.jpg"], tmp_path / "old.png")
    jobs = plan_jobs([tmp_path / "a.jpg", tmp_path / "b.jpg"], tmp_path / "all.png", output_is_dir=True)
    assert [j.dst for j in jobs] == [tmp_path / "all.png" / "a.png", tmp_path / "all.png" / "b.png"]
    assert [j.dst for j in plan_jobs([tmp_path / "a.jpg"], tmp_path / "one.png")] == [tmp_path / "one.png"]


def test_json_lines_come_in_input_order(tmp_path, tiny_model, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        colour_image(30 + i, 30).save(src / f"p{i}.png")
    (src / "p2.png").write_bytes(b"broken")  # fails on loading, before p0 and p1 are colorized
    out = tmp_path / "out"
    out.mkdir()
    colour_image(30, 30).save(out / "p3.png")  # skipped at once
    jobs = plan_jobs([src], out)
    run_jobs(tiny_model, jobs, ColorizeOptions(), as_json=True)
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [Path(x["input"]).name for x in lines] == ["p0.png", "p1.png", "p2.png", "p3.png"]
    assert [x["status"] for x in lines] == ["ok", "ok", "failed", "skipped"]


def test_jobs_keep_the_order_inputs_were_given_in_even_refused_and_renamed_ones(tmp_path):
    for sub in ("a", "b", "empty"):
        (tmp_path / sub).mkdir()
    colour_image(30, 30).save(tmp_path / "a" / "photo.png")
    colour_image(30, 30).save(tmp_path / "b" / "photo.jpg")
    colour_image(30, 30).save(tmp_path / "b.png")
    inputs = [tmp_path / "a" / "photo.png", tmp_path / "empty", tmp_path / "b.png", tmp_path / "b" / "photo.jpg"]
    jobs = plan_jobs(inputs, tmp_path / "out")
    assert [j.src for j in jobs] == inputs
    assert len(plan_jobs([*inputs, tmp_path / "empty"], tmp_path / "out")) == 4  # named twice: refused once
    assert jobs[1].error and "no images" in jobs[1].error
    assert [j.dst.name for j in jobs if j.dst] == ["photo_png.png", "b.png", "photo_jpg.png"]


def test_a_result_is_never_named_like_a_folder_of_results(tmp_path):
    src = tmp_path / "col"
    (src / "photo.png").mkdir(parents=True)  # a subfolder named like photo.jpg's result
    colour_image(30, 30).save(src / "photo.jpg")
    colour_image(30, 30).save(src / "photo.png" / "inner.jpg")
    jobs = plan_jobs([src], tmp_path / "out", recursive=True)
    assert sorted(j.dst.relative_to(tmp_path / "out").as_posix() for j in jobs) == [
        "photo-1.png",
        "photo.png/inner.png",
    ]
    (tmp_path / "out2" / "a.png").mkdir(parents=True)  # a folder already in the output
    colour_image(30, 30).save(tmp_path / "a.jpg")
    colour_image(30, 30).save(tmp_path / "b.jpg")
    jobs = plan_jobs([tmp_path / "a.jpg", tmp_path / "b.jpg"], tmp_path / "out2")
    assert [j.dst.name for j in jobs] == ["a-1.png", "b.png"]


def test_long_names_that_fit_are_written(tmp_path, tiny_model):
    from colorcli.files import atomic_write

    name = "a" * 251 + ".png"  # 255 bytes: the longest a name can be
    atomic_write(tmp_path / name, lambda f: f.write(b"x"))
    assert (tmp_path / name).read_bytes() == b"x" and len(list(tmp_path.iterdir())) == 1


def test_transparency_a_format_cannot_hold_is_left_out_with_a_note(tmp_path, tiny_model, capsys):
    src = tmp_path / "logo.png"
    colour_image(40, 40).convert("RGBA").save(src)
    jobs = plan_jobs([src], tmp_path / "out", fmt="jpg", output_is_dir=True)
    run_jobs(tiny_model, jobs, ColorizeOptions(), as_json=True)
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["status"] == "ok" and "transparency left out: JPEG has none" in record["note"]
    run_jobs(tiny_model, plan_jobs([src], tmp_path / "out2.png"), ColorizeOptions(), as_json=True)
    assert "note" not in json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # PNG keeps it


def test_an_image_too_wide_for_its_format_fails_before_colorizing(tmp_path, tiny_model, monkeypatch):
    import colorcli.inference as inference_module

    Image.new("L", (17_000, 2), 128).save(tmp_path / "strip.png")
    colour_image(30, 30).save(tmp_path / "ok.png")
    seen = []
    real = inference_module.predict_chroma_many  # what reaches the model
    monkeypatch.setattr(inference_module, "predict_chroma_many", lambda m, g, o: seen.extend(g) or real(m, g, o))
    jobs = plan_jobs([tmp_path / "strip.png", tmp_path / "ok.png"], tmp_path / "out", fmt="webp")
    report = run_jobs(tiny_model, jobs, ColorizeOptions())
    assert (report.done, report.failed) == (1, 1) and [g.shape for g in seen] == [(30, 30)]
    Image.new("L", (66_000, 1), 128).save(tmp_path / "line.png")
    jobs = plan_jobs([tmp_path / "line.png"], tmp_path / "line.jpg")
    report = run_jobs(tiny_model, jobs, ColorizeOptions())
    assert report.failed == 1 and len(seen) == 1 and not (tmp_path / "line.jpg").exists()


@pytest.mark.parametrize("code", ["ENOSPC", "EDQUOT", "EROFS"])
def test_a_full_disk_stops_the_batch_at_the_first_file(tmp_path, tiny_model, monkeypatch, capsys, code):
    import errno

    import colorcli.inference as inference_module

    for i in range(4):
        colour_image(30, 30).save(tmp_path / f"{i}.png")
    (tmp_path / "out").mkdir()
    colour_image(30, 30).save(tmp_path / "out" / "2.png")  # exists: skipped before the stop
    tries = []

    def full(rgb, loaded, path):
        tries.append(path.name)
        raise OSError(getattr(errno, code), "No space left on device")

    monkeypatch.setattr(inference_module, "save_result", full)
    jobs = plan_jobs([tmp_path / f"{i}.png" for i in range(4)], tmp_path / "out")
    report = run_jobs(tiny_model, jobs, ColorizeOptions(), as_json=True)
    assert tries == ["0.png"] and report.stopped and "No space left on device" in report.stopped
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(Path(x["input"]).name, x["status"]) for x in lines] == [
        ("0.png", "failed"),
        ("1.png", "failed"),
        ("2.png", "skipped"),
        ("3.png", "failed"),
    ]
    assert "not written, stopped" in lines[1]["error"] and report.exit_code == 1


def test_output_folders_are_made_only_for_results(tmp_path, tiny_model):
    (tmp_path / "in" / "good").mkdir(parents=True)
    (tmp_path / "in" / "bad").mkdir()
    colour_image(30, 30).save(tmp_path / "in" / "good" / "a.png")
    (tmp_path / "in" / "bad" / "b.png").write_bytes(b"broken")
    jobs = plan_jobs([tmp_path / "in"], tmp_path / "out", recursive=True)
    check_output_folders(jobs, tmp_path / "out")  # checks, makes nothing
    assert not (tmp_path / "out").exists()
    run_jobs(tiny_model, jobs, ColorizeOptions())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good"]
    bad_only = [j for j in plan_jobs([tmp_path / "in"], tmp_path / "out2", recursive=True) if "bad" in j.src.parts]
    assert run_jobs(tiny_model, bad_only, ColorizeOptions()).failed == 1
    assert not (tmp_path / "out2").exists()  # every input failed: no folder left behind
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="cannot create output folder"):
        check_output_folders(jobs, tmp_path / "file" / "sub")


def test_an_interrupt_ends_the_batch_with_what_is_done_and_says_so(tmp_path, tiny_model, monkeypatch):
    import colorcli.inference as inference_module

    for i in range(3):
        colour_image(30, 30).save(tmp_path / f"{i}.png")
    real, calls = inference_module.save_result, []

    def then_ctrl_c(rgb, loaded, path):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(rgb, loaded, path)

    monkeypatch.setattr(inference_module, "save_result", then_ctrl_c)
    jobs = plan_jobs([tmp_path / f"{i}.png" for i in range(3)], tmp_path / "out")
    report = run_jobs(tiny_model, jobs, ColorizeOptions(), batch_files=1)
    assert report.interrupted and report.done == 1 and report.exit_code == 130
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png"]


def test_names_that_differ_only_in_unicode_form_do_not_collide(tmp_path):
    nfc, nfd = "caf\u00e9", "cafe\u0301"  # the same name to macOS
    colour_image(30, 30).save(tmp_path / f"{nfc}.jpg")
    colour_image(30, 30).save(tmp_path / f"{nfd}.png")
    jobs = plan_jobs([tmp_path / f"{nfc}.jpg", tmp_path / f"{nfd}.png"], tmp_path / "out")
    keys = {unicodedata.normalize("NFC", j.dst.name).casefold() for j in jobs}
    assert len(keys) == 2


def test_a_result_whose_folder_is_a_file_fails_before_it_is_colorized(tmp_path, tiny_model, monkeypatch):
    import colorcli.inference as inference_module

    (tmp_path / "in" / "sub").mkdir(parents=True)
    colour_image(30, 30).save(tmp_path / "in" / "a.png")
    colour_image(30, 30).save(tmp_path / "in" / "sub" / "b.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sub").write_text("a file where results/sub/ should go")
    seen = []
    real = inference_module.predict_chroma_many  # what reaches the model
    monkeypatch.setattr(inference_module, "predict_chroma_many", lambda m, g, o: seen.extend(g) or real(m, g, o))
    errors = Console(file=io.StringIO(), width=300)
    jobs = plan_jobs([tmp_path / "in"], tmp_path / "out", recursive=True)
    report = run_jobs(tiny_model, jobs, ColorizeOptions(), err_console=errors)
    assert (report.done, report.failed, report.exit_code) == (1, 1, 1)
    assert len(seen) == 1 and (tmp_path / "out" / "a.png").is_file()
    assert f"{tmp_path / 'out' / 'sub'} is not a folder" in errors.file.getvalue()
    assert (tmp_path / "out" / "sub").read_text().startswith("a file")  # untouched


def test_a_symlink_loop_is_one_failed_input_and_the_batch_goes_on(tmp_path, tiny_model, capsys):
    (tmp_path / "a.jpg").symlink_to("b.jpg")
    (tmp_path / "b.jpg").symlink_to("a.jpg")
    colour_image(30, 30).save(tmp_path / "good.png")
    jobs = plan_jobs([tmp_path / "a.jpg", tmp_path / "good.png"], tmp_path / "out")
    assert [j.src.name for j in jobs] == ["a.jpg", "good.png"]
    assert jobs[0].error == f"{tmp_path / 'a.jpg'}: is a symlink loop (links that point at each other)"
    report = run_jobs(tiny_model, jobs, ColorizeOptions(), as_json=True)
    assert (report.done, report.failed, report.exit_code) == (1, 1, 1)
    assert [json.loads(x)["status"] for x in capsys.readouterr().out.splitlines()] == ["failed", "ok"]
    assert (tmp_path / "out" / "good.png").is_file()
    # a loop where a result goes is written over like any link, not followed
    (tmp_path / "out2").mkdir()
    (tmp_path / "out2" / "good.png").symlink_to("good.png")
    assert run_jobs(tiny_model, plan_jobs([tmp_path / "good.png"], tmp_path / "out2"), ColorizeOptions()).done == 1
    assert (tmp_path / "out2" / "good.png").is_file()


def test_a_named_fifo_is_refused_at_once_not_opened(tmp_path, tiny_model):
    import os

    os.mkfifo(tmp_path / "p.jpg")  # opening it would wait for a writer forever
    with pytest.raises(UsageError, match=r"p\.jpg: is a FIFO \(named pipe\), not an image file"):
        plan_jobs([tmp_path / "p.jpg"], tmp_path / "x.png")
    colour_image(30, 30).save(tmp_path / "good.png")
    jobs = plan_jobs([tmp_path / "p.jpg", tmp_path / "good.png"], tmp_path / "out")
    report = run_jobs(tiny_model, jobs, ColorizeOptions())
    assert (report.done, report.failed) == (1, 1) and "FIFO" in jobs[0].error
    with pytest.raises(InputError, match="is a FIFO"):
        load_image(tmp_path / "p.jpg")


def test_folder_entries_named_like_images_that_are_none_are_each_accounted_for(tmp_path, tiny_model):
    import os

    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.png", "c.png"):
        colour_image(30, 30).save(src / name)
    os.mkfifo(src / "b.jpg")
    (src / "d.jpg").mkdir()
    colour_image(30, 30).save(src / "d.jpg" / "inner.png")
    (src / "e.jpg").symlink_to("f.jpg")
    (src / "f.jpg").symlink_to("e.jpg")
    (src / "g.png").symlink_to("gone.png")
    (src / "notes.txt").write_text("not named like a photo: not an input")
    jobs = plan_jobs([src], tmp_path / "out")
    assert [(j.src.name, j.left_out, j.error is not None) for j in jobs] == [
        ("a.png", False, False),
        ("b.jpg", True, True),
        ("c.png", False, False),
        ("d.jpg", True, True),
        ("e.jpg", False, True),
        ("f.jpg", False, True),
        ("g.png", False, True),
    ]
    assert jobs[1].error == f"{src / 'b.jpg'}: left out: a FIFO (named pipe), not an image file"
    assert jobs[3].error == f"{src / 'd.jpg'}: left out: a folder (-r looks in subfolders)"
    assert jobs[6].error == f"{src / 'g.png'}: is a broken link (to gone.png, which does not exist)"
    errors = Console(file=io.StringIO(), width=300)
    report = run_jobs(tiny_model, jobs, ColorizeOptions(), err_console=errors)
    assert (report.done, report.failed, report.left_out, report.exit_code) == (2, 3, 2, 1)
    said = errors.file.getvalue().splitlines()
    assert sum("b.jpg" in line for line in said) == sum("d.jpg" in line for line in said) == 1
    # with -r the folder named like an image is looked into instead
    jobs = plan_jobs([src], tmp_path / "out", recursive=True)
    assert "inner.png" in [j.src.name for j in jobs] and "d.jpg" not in [j.src.name for j in jobs]
    # a glob accounts for what it matches in the same way
    colour_image(30, 30).save(src / "h.jpg")
    jobs = plan_jobs([src / "*.jpg"], tmp_path / "out3")
    assert [(j.src.name, j.left_out, j.error is not None) for j in jobs] == [
        ("b.jpg", True, True),
        ("d.jpg", True, True),
        ("e.jpg", False, True),
        ("f.jpg", False, True),
        ("h.jpg", False, False),
    ]


def test_a_jpeg_with_damaged_data_is_colorized_with_a_note_naming_it(tmp_path, tiny_model, capsys):
    colour_image(200, 150, seed=1).save(tmp_path / "whole.jpg", quality=90)
    data = bytearray((tmp_path / "whole.jpg").read_bytes())
    data[len(data) // 2 : len(data) // 2 + 40] = bytes(40)  # the same damage fails a PNG
    (tmp_path / "damaged.jpg").write_bytes(data)
    assert load_image(tmp_path / "whole.jpg").note is None
    assert load_image(tmp_path / "damaged.jpg").note.startswith("corrupt JPEG data (")
    jobs = plan_jobs([tmp_path / "damaged.jpg", tmp_path / "whole.jpg"], tmp_path / "out")
    report = run_jobs(tiny_model, jobs, ColorizeOptions(), as_json=True)
    assert (report.done, report.exit_code) == (2, 0)
    damaged, whole = (json.loads(x) for x in capsys.readouterr().out.splitlines())
    assert "part of the picture may be garbled" in damaged["note"] and "note" not in whole
    errors = Console(file=io.StringIO(), width=300)
    run_jobs(tiny_model, jobs, ColorizeOptions(), overwrite=True, err_console=errors)
    [line] = errors.file.getvalue().splitlines()
    assert line.startswith(f"note: {tmp_path / 'damaged.jpg'}: corrupt JPEG data (")


def test_the_progress_bar_moves_as_each_file_is_written(tmp_path, tiny_model, monkeypatch):
    import rich.progress

    import colorcli.inference as inference_module

    for i in range(6):
        colour_image(200, 150, seed=i).save(tmp_path / f"{i}.png")  # 35 tiles each at the default scale
    events = []
    model_call, enlarge = inference_module.predict_chroma_many, inference_module._full_resolution
    monkeypatch.setattr(
        inference_module, "predict_chroma_many", lambda m, g, o: events.append(len(g)) or model_call(m, g, o)
    )
    monkeypatch.setattr(inference_module, "_full_resolution", lambda *a: events.append("enlarge") or enlarge(*a))
    update = rich.progress.Progress.update

    def seen(self, task, **kw):
        if kw.get("completed"):
            events.append(f"{kw['completed']}/6")
        update(self, task, **kw)

    monkeypatch.setattr(rich.progress.Progress, "update", seen)
    terminal = Console(file=io.StringIO(), force_terminal=True, width=100)  # the bar is drawn, as on a terminal
    jobs = plan_jobs([tmp_path / f"{i}.png" for i in range(6)], tmp_path / "out")
    assert run_jobs(tiny_model, jobs, ColorizeOptions(), err_console=terminal).done == 6
    # Four photos share a model call (140 tiles, past 128), then each is finished before the next is enlarged.
    assert events == [
        4, "enlarge", "1/6", "enlarge", "2/6", "enlarge", "3/6", "enlarge", "4/6",
        2, "enlarge", "5/6", "enlarge", "6/6",
    ]  # fmt: skip
    assert "6/6" in terminal.file.getvalue()


def test_small_files_still_share_model_calls_64_at_a_time(tmp_path, tiny_model, monkeypatch):
    import colorcli.inference as inference_module

    src = tmp_path / "small"
    src.mkdir()
    for i in range(70):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (32, 32), dtype=np.uint8)).save(src / f"{i:02d}.png")
    calls = []
    real = inference_module.predict_chroma_many
    monkeypatch.setattr(inference_module, "predict_chroma_many", lambda m, g, o: calls.append(len(g)) or real(m, g, o))
    assert run_jobs(tiny_model, plan_jobs([src], tmp_path / "out"), ColorizeOptions()).done == 70
    assert calls == [64, 6]
