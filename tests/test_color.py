import numpy as np
import torch
from PIL import Image

from colorcli.color import fit_to_gamut, luma_u8, rgb_to_cbcr, ycbcr_to_rgb, ycbcr_to_rgb_u8


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
