import numpy as np
import torch
from PIL import Image

from colorcli.color import (
    fit_to_gamut,
    luma_u8,
    rgb_to_cbcr,
    ycbcr_pixels_to_rgb_u8,
    ycbcr_planes_to_rgb,
    ycbcr_to_rgb,
    ycbcr_to_rgb_u8,
)


def random_rgb(seed: int = 0, shape=(2, 3, 17, 23)) -> torch.Tensor:
    return torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_luma_is_bit_exact_with_pillow():
    rgb = random_rgb()
    for img in rgb:
        expected = np.asarray(Image.fromarray(img.permute(1, 2, 0).numpy()).convert("L"))
        assert np.array_equal(luma_u8(img[None])[0, 0].numpy(), expected)


def test_ycbcr_round_trip():
    rgb = random_rgb(1).float()
    y = 0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]
    back = ycbcr_to_rgb(y, rgb_to_cbcr(rgb))
    assert torch.allclose(back, rgb, atol=1e-3)


def test_cbcr_matches_pillow_ycbcr():
    img = random_rgb(2, (1, 3, 8, 8))[0].permute(1, 2, 0).numpy()
    ycc = np.asarray(Image.fromarray(img).convert("YCbCr")).astype(np.float32)
    ours = rgb_to_cbcr(torch.from_numpy(img).permute(2, 0, 1)[None].float())[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - (ycc[..., 1:] - 128)).max() <= 1.0


def test_gamut_fit_keeps_luma_exact_for_wild_chroma():
    y = torch.randint(0, 256, (1, 1, 40, 40)).float()
    cbcr = torch.randn(1, 2, 40, 40) * 200  # far outside any gamut
    fitted = fit_to_gamut(y, cbcr)
    rgb = ycbcr_to_rgb(y, fitted)
    assert rgb.min() >= -1e-3 and rgb.max() <= 255 + 1e-3
    assert (fitted.abs() <= cbcr.abs() + 1e-4).all()
    out = ycbcr_to_rgb_u8(y, cbcr)
    assert (luma_u8(out).float() - y).abs().max() <= 1


def test_gamut_fit_leaves_in_gamut_colours_alone():
    rgb = random_rgb(3).float()
    y = luma_u8(rgb.byte()).float()
    cbcr = rgb_to_cbcr(rgb) * 0.2
    assert torch.allclose(fit_to_gamut(y, cbcr), cbcr)


def _wild_ycbcr(seed: int, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Luma (n,) in 0..255 and chroma (2, n) float32, much of it far out of gamut."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 256, n).astype(np.float32)
    return y, (rng.normal(0, 60, (2, n)) * rng.uniform(0, 2, n)).astype(np.float32)


def test_numpy_planes_to_rgb_has_the_bits_of_the_torch_conversion():
    y, cbcr = _wild_ycbcr(4)
    ours = ycbcr_planes_to_rgb(y.reshape(40, 100), cbcr.reshape(2, 40, 100), np.empty((3, 40, 100), np.float32))
    theirs = ycbcr_to_rgb(torch.from_numpy(y).view(1, 1, 40, 100), torch.from_numpy(cbcr).view(1, 2, 40, 100))
    assert np.array_equal(ours, theirs[0].numpy())


def test_numpy_pixels_to_rgb_u8_fits_the_gamut_as_the_torch_conversion_does():
    y, cbcr = _wild_ycbcr(5)
    ours = ycbcr_pixels_to_rgb_u8(y, cbcr)  # (3, n)
    # the pixels as a (1, C, n, 1) image for the torch converter, back to (3, n)
    theirs = ycbcr_to_rgb_u8(torch.from_numpy(y).view(1, 1, -1, 1), torch.from_numpy(cbcr).view(1, 2, -1, 1))
    assert ours.dtype == np.float32 and ours.min() >= 0 and ours.max() <= 255
    assert np.array_equal(ours, theirs[0, :, :, 0].numpy())
