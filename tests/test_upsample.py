"""Colour at full resolution: guided upsampling along the luma's edges, and the join with that luma."""

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import torch
from PIL import Image

from colorcli.upsample import BAND_ROWS, compose_chroma, compose_guided, guide_radius, guided_planes
from helpers import cbcr, luma


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
    chroma = np.stack([np.asarray(cb), np.asarray(cr)]).astype(np.float32) - 128  # (2, 64, 64)
    composed = compose_chroma(y, chroma)
    assert (luma(composed) == np.asarray(y)).all()
    truth = np.stack([np.asarray(cb), np.asarray(cr)]).astype(np.float32) - 128
    assert np.abs(cbcr(composed) - truth).mean() < 1.0  # the chroma as given, to rounding


def _edge_photo(size: int, edge: int):
    """A gray (size, size) photo with a vertical edge at column ``edge`` and its true chroma, (2, size, size)."""
    y = np.where(np.arange(size) < edge, 70, 180).astype(np.uint8)[None].repeat(size, 0)  # (size, size)
    sign = np.where(np.arange(size) < edge, -1.0, 1.0).astype(np.float32)[None].repeat(size, 0)
    return y, np.stack([40 * sign, -30 * sign])  # (2, size, size)


def _working(gray: Image.Image, truth: np.ndarray, small: int):
    """The working-scale luma and the chroma a perfect model would predict there."""
    working = np.asarray(gray.resize((small, small), Image.Resampling.BOX))
    chroma = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(truth)[None], small)[0]  # (2, small, small)
    return working, chroma.numpy()


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
        errors[radius] = np.abs(cbcr(out) - truth)[:, :, near_edge].mean()
    assert errors[2] < 0.45 * errors[0], errors  # bilinear smears colour across the edge; guided much less


def test_guided_upsampling_keeps_a_thin_line_beside_an_edge_on_its_own_side():
    y, truth = _edge_photo(320, 171)
    y[:, 162:164] = 235  # a bright wire 8 pixels left of the edge, on the Cb -40 side
    gray = Image.fromarray(y)
    working, chroma = _working(gray, truth, 96)
    out = cbcr(compose_guided(gray, guided_planes(working, chroma, 2, 1e-3)))
    # The left side's hue (Cb < 0 < Cr), pulled toward gray into the gamut at luma 235; without
    # the local range the fitted slope of the edge flipped the wire's hue (Cb +4, Cr -4).
    assert out[0, :, 162:164].max() < 0 and out[1, :, 162:164].min() > 0


def test_guided_upsampling_keeps_flat_colour_flat_on_textured_luma():
    rng = np.random.default_rng(1)
    gray = Image.fromarray(rng.integers(60, 200, (200, 150)).astype(np.uint8))
    working = np.asarray(gray.resize((64, 48), Image.Resampling.BOX))
    chroma = np.broadcast_to(np.float32([12.0, -20.0])[:, None, None], (2, 48, 64))  # (2, 48, 64)
    out = cbcr(compose_guided(gray, guided_planes(working, chroma, 2, 1e-3)))
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
    planes = np.concatenate([fit, mid - 15, mid + 15])  # (8, h, w): a, b, low, high
    banded = np.asarray(compose_guided(Image.fromarray(y), planes, band_pixels=band_pixels)).astype(int)
    # torch's bilinear enlargement is the reference the numpy one follows, tap for tap
    up = torch.nn.functional.interpolate(torch.from_numpy(planes)[None], size, mode="bilinear", align_corners=False)[0]
    chroma = (up[0:2] * torch.from_numpy(y.astype(np.float32) / 255) + up[2:4]).clamp(up[4:6], up[6:8])
    whole = np.asarray(compose_chroma(Image.fromarray(y), chroma.numpy())).astype(int)
    assert np.abs(banded - whole).max() <= 1 and (banded != whole).mean() < 0.01


@pytest.mark.parametrize(("h", "w", "r"), [(9, 7, 2), (9, 7, 1), (4, 11, 3), (1, 5, 2)])  # windows wider than the plane
def test_guided_planes_match_a_pixel_by_pixel_guided_filter(h, w, r):
    rng = np.random.default_rng(6)
    eps = 1e-3
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
    planes = guided_planes(guide, chroma.astype(np.float32), r, eps)  # (8, h, w)
    assert planes.shape == (8, h, w) and planes.dtype == np.float32
    assert np.allclose(planes[:4], expected, rtol=1e-3, atol=1e-2)
    for at, extreme in ((4, np.min), (6, np.max)):
        bound = [[[extreme(chroma[c][np.ix_(*window(i, j))]) for j in range(w)] for i in range(h)] for c in range(2)]
        assert np.allclose(planes[at : at + 2], bound, atol=1e-4)


@pytest.mark.parametrize(
    ("enlargement", "radius"), [(1.0, 0), (1.01, 0), (1.49, 0), (1.5, 1), (1.99, 1), (2.0, 2), (31.0, 2)]
)
def test_the_guide_radius_grows_in_steps_with_the_enlargement(enlargement, radius):
    assert guide_radius(enlargement, 2) == radius


def test_a_tall_photo_is_composed_without_full_size_float_planes():
    # numpy reports its buffers to tracemalloc: the peak is the uint8 output planes and the gray's
    # bytes (4 bytes a pixel) and one band; a single float32 plane of the whole photo would add 4.
    height, width = 8000, 250
    rng = np.random.default_rng(7)
    gray = Image.fromarray(rng.integers(0, 256, (height, width)).astype(np.uint8))
    planes = rng.normal(0, 20, (8, 100, 12)).astype(np.float32)
    tracemalloc.start()
    try:
        compose_guided(gray, planes)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    band = BAND_ROWS * width * 200  # bytes: some 50 floats a pixel of one band, far more than it takes
    assert peak < 4 * height * width + band, peak / (height * width)


def test_the_colour_stage_runs_without_torch():
    script = """
import sys
sys.modules["torch"] = None  # any import of torch now fails
import numpy as np
from PIL import Image
from colorcli.upsample import compose_chroma, compose_guided, guided_planes
gray = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 30)).astype(np.uint8))
chroma = np.full((2, 10, 8), 90, np.float32)  # far out of gamut: the fitting runs too
out = compose_guided(gray, guided_planes(np.asarray(gray.resize((8, 10))), chroma, 2, 1e-3))
compose_chroma(gray, np.zeros((2, 40, 30), np.float32))
print(out.mode, out.size)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["RGB", "(30,", "40)"]
