"""The tiling maths: working scale, tiles and their blending, colour strength."""

import numpy as np
import pytest
import torch
from PIL import Image

from colorcli.errors import UsageError
from colorcli.tiling import ColorizeOptions, _window, colorize_gray, predict_chroma, working_size
from helpers import cbcr, colour_image, luma


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
    assert np.abs(np.diff(chroma, axis=1)).max() < 5 and np.abs(np.diff(chroma, axis=2)).max() < 5


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
    assert np.allclose(chroma, one_call, atol=1e-4)  # batch size may change the conv kernels, not the blend


def test_window_is_smooth_and_positive():
    w = _window(32, 16)
    assert w.min() > 0 and 0.99 < w.max() <= 1
    assert w.dtype == np.float32 and np.array_equal(w, w.T)


def test_working_size_never_enlarges():
    assert working_size(4000, 3000, 64) == (85, 64)
    assert working_size(4000, 3000, 96) == (128, 96)
    assert working_size(20, 10, 64) == (20, 10)
    assert working_size(3, 500, 64) == (3, 500)


def test_saturation_scales_chroma(tiny_model):
    g = np.asarray(colour_image(40, 40).convert("L")).copy()
    a = predict_chroma(tiny_model, g, ColorizeOptions(saturation=1.0))
    b = predict_chroma(tiny_model, g, ColorizeOptions(saturation=2.0))
    assert np.allclose(b, 2 * a, atol=1e-4)


def test_the_models_tile_saturation_scales_photo_colour(tiny_model):
    from dataclasses import replace

    gray = (np.arange(48 * 40) % 251).astype(np.uint8).reshape(48, 40)
    plain = predict_chroma(tiny_model, gray, ColorizeOptions())
    tiny_model.config = replace(tiny_model.config, tile_saturation=1.5)
    boosted = predict_chroma(tiny_model, gray, ColorizeOptions(saturation=2.0))
    assert np.abs(plain).max() > 0
    assert np.allclose(boosted, plain * 3.0, atol=1e-4)  # the model's factor times the option's
    small = (np.arange(32 * 32) % 251).astype(np.uint8).reshape(32, 32)  # one tile: the whole picture
    with torch.no_grad():
        whole = tiny_model(torch.from_numpy(small).float()[None, None])[0].numpy()  # (2, 32, 32)
    assert np.allclose(predict_chroma(tiny_model, small, ColorizeOptions()), whole, atol=1e-4)


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
    out = cbcr(colorize_gray(Checker(), gray, ColorizeOptions()))
    assert np.abs(out - predicted).mean() < 1.0


def test_a_photo_just_larger_than_the_working_scale_is_not_smoothed_paler():
    strength = {
        side: np.abs(cbcr(colorize_gray(Checker(), _mid_gray(side, side), ColorizeOptions()))).mean()
        for side in (96, 97, 120)
    }
    assert strength[96] > 20
    # Bilinear resampling alone costs up to 15% on so sharp a pattern; the filter at radius 2 would halve it.
    assert strength[97] > 0.85 * strength[96] and strength[120] > 0.85 * strength[96], strength


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
