"""The tiling maths: working scale, tiles and their blending, guided upsampling, colour strength."""

import numpy as np
import pytest
import torch
from PIL import Image

from colorcli.errors import UsageError
from colorcli.tiling import (
    ColorizeOptions,
    _window,
    colorize_gray,
    compose_chroma,
    compose_guided,
    guide_radius,
    guided_planes,
    predict_chroma,
    working_size,
)
from helpers import colour_image, luma


@pytest.mark.parametrize("size", [(1, 1), (3, 500), (2000, 17), (33, 65), (100, 100)])
def test_extreme_shapes(tiny_model, size):
    gray = colour_image(*size, seed=2).convert("L")
    out = colorize_gray(tiny_model, gray, ColorizeOptions())
    assert out.size == size and out.mode == "RGB"
    assert np.abs(luma(out) - np.asarray(gray, dtype=np.int16)).mean() <= 1.0


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


def test_a_long_strip_goes_through_the_model_one_call_of_tiles_at_a_time(tiny_model):
    """A 2 x 3,000 strip is about 190 tiles of 32x32: no call, and no buffer, holds them all."""

    class Counting(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner, self.batches = inner, []

        @property
        def config(self):
            return self.inner.config

        def forward(self, y):
            self.batches.append(y.shape[0])
            return self.inner(y)

    model = Counting(tiny_model)
    strip = (np.arange(6000).reshape(2, 3000) % 251).astype(np.uint8)  # (H, W)
    options = ColorizeOptions(tile_batch=8)
    chroma = predict_chroma(model, strip, options)
    assert chroma.shape == (2, 2, 3000)
    per_call = options.for_model(tiny_model).tiles_per_call
    assert max(model.batches) <= per_call and sum(model.batches) == len(range(0, 3000 - 32, 16)) + 1
    # Blended call by call, each image on its own (h, w), it is what a whole-image blend gives.
    one_call = predict_chroma(tiny_model, strip, ColorizeOptions(tile_batch=1000))
    assert torch.allclose(chroma, one_call, atol=1e-4)  # batch size may change the conv kernels, not the blend


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
        ("saturation", float("inf")),
        ("saturation", float("nan")),
        ("saturation", -0.5),
        ("scale", 0),
        ("scale", -3),
        ("scale", 1.5),
        ("scale", True),
    ],
)
def test_colorize_options_are_checked(field, value):
    with pytest.raises(UsageError, match=field.replace("_", " ")):
        ColorizeOptions(**{field: value})


def test_a_working_scale_may_be_any_whole_number(tiny_model):
    for scale in (48, 48.0, np.int64(48)):  # what numpy arithmetic or a config file gives
        assert ColorizeOptions(scale=scale).for_model(tiny_model).scale == 48


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
