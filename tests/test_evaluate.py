import numpy as np
import pytest
import torch
from PIL import Image

from colorcli.evaluate import (
    evaluate_tensor,
    model_colour_share,
    save_grid,
    save_photo_grid,
    undertrained_hint,
)
from colorcli.metrics import colorfulness, psnr_per_image, ssim_per_image
from colorcli.tiling import ColorizeOptions
from helpers import colour_image


def test_psnr_known_values():
    a = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    b = a.clone()
    b[1] += 10  # MSE 100 -> 10*log10(255^2/100)
    p = psnr_per_image(b, a)
    assert p[0] == 100.0
    assert abs(p[1].item() - 28.1308) < 1e-3


def test_ssim_is_one_for_identical_and_lower_otherwise():
    a = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert torch.allclose(ssim_per_image(a, a), torch.ones(2), atol=1e-4)
    assert (ssim_per_image(a, 255 - a) < 0.5).all()
    assert ssim_per_image(a[:, :, :5, :7], a[:, :, :5, :7]).shape == (2,)  # smaller than the window


def _patterns() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three fixed (1, 3, 16, 16) uint8 images: a stripy pattern, a scrambled copy, a faded copy."""
    a = ((torch.arange(3 * 16 * 16) * 37) % 256).view(1, 3, 16, 16).to(torch.uint8)
    return a, ((a.int() * 3 + 20) % 256).to(torch.uint8), (a.float() * 0.5 + 60).to(torch.uint8)


def test_ssim_known_values():
    flat_dark = torch.full((1, 3, 16, 16), 51, dtype=torch.uint8)  # 0.2 on the 0..1 scale
    flat_light = torch.full((1, 3, 16, 16), 102, dtype=torch.uint8)  # 0.4
    # Flat images have no variance: SSIM is the luminance term (2ab + C1) / (a^2 + b^2 + C1).
    expected = (2 * 0.2 * 0.4 + 1e-4) / (0.2**2 + 0.4**2 + 1e-4)
    assert ssim_per_image(flat_dark, flat_light).item() == pytest.approx(expected, abs=1e-6)
    a, scrambled, faded = _patterns()
    # kornia 0.9's ssim (window 11, same padding) gave these for the images above
    assert ssim_per_image(a, scrambled).item() == pytest.approx(0.2286085, abs=1e-5)
    assert ssim_per_image(a, faded).item() == pytest.approx(0.8011182, abs=1e-5)
    assert ssim_per_image(scrambled, a).item() == pytest.approx(ssim_per_image(a, scrambled).item(), abs=1e-6)


@pytest.mark.parametrize("shape", [(4, 3, 32, 32), (2, 3, 5, 7), (2, 3, 1, 9), (2, 3, 2, 2), (1, 3, 90, 120)])
def test_ssim_matches_kornia(shape):
    kornia_metrics = pytest.importorskip("kornia.metrics")
    torch.manual_seed(0)
    a = torch.randint(0, 256, shape, dtype=torch.uint8)
    b = (a.float() * 0.7 + torch.randint(0, 60, shape)).clamp(0, 255).to(torch.uint8)
    side = min(11, *shape[-2:])
    window = side if side % 2 else side - 1  # what eval passed to kornia
    for pred, truth in ((a, b), (a, a), (a, 255 - a)):
        theirs = kornia_metrics.ssim(pred.float() / 255, truth.float() / 255, window_size=window, max_val=1.0)
        assert torch.allclose(ssim_per_image(pred, truth), theirs.flatten(1).mean(1), atol=1e-5)


def test_colorfulness_of_gray_is_zero_and_grows_with_saturation():
    gray = torch.full((1, 3, 8, 8), 100, dtype=torch.uint8)
    assert colorfulness(gray).item() == 0
    red = gray.clone()
    red[:, 0] = 200
    redder = gray.clone()
    redder[:, 0] = 250
    assert 0 < colorfulness(red).item() < colorfulness(redder).item()


def test_evaluate_tensor_reports_model_and_gray_side_by_side(tiny_model):
    data = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8)
    r = evaluate_tensor(tiny_model, data, batch_size=7)
    for key in (
        "psnr",
        "psnr_pooled",
        "ssim",
        "colorfulness",
        "gray_psnr",
        "gray_ssim",
        "gray_colorfulness",
        "truth_colorfulness",
    ):
        assert key in r
    assert r["images"] == 20
    assert r["gray_colorfulness"] == 0


def test_black_and_white_originals_are_also_left_out_in_color_figures(tiny_model):
    torch.manual_seed(0)
    colour = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    bw = torch.randint(0, 256, (2, 1, 32, 32), dtype=torch.uint8).expand(-1, 3, -1, -1)
    both = evaluate_tensor(tiny_model, torch.cat([colour, bw]), batch_size=3)
    only_colour = evaluate_tensor(tiny_model, colour)
    assert both["bw_originals"] == 2 and only_colour["bw_originals"] == 0
    assert both["gray_psnr"] > only_colour["gray_psnr"] + 15  # the gray copy of a b/w original scores 100 dB
    for key in ("psnr", "gray_psnr", "psnr_gain_db", "colorfulness_ratio"):
        assert both[f"color_{key}"] == pytest.approx(only_colour[key], rel=1e-5)


def _label_ink(im: Image.Image, band: int, columns: list[tuple[int, int]]) -> list[int]:
    """Dark pixels in the top ``band`` rows over each (left, width) column of a grid."""
    top = torch.from_numpy(np.asarray(im.convert("L"))[:band].copy())
    return [int((top[:, left : left + width] < 128).sum()) for left, width in columns]


def test_grid_has_rows_of_gray_colorized_truth_under_column_labels(tiny_model, tmp_path):
    data = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    save_grid(tiny_model, data, tmp_path / "g.png", rows=4, zoom=2)
    im = Image.open(tmp_path / "g.png")
    band = 16  # the labels: gray input | colorcli | original
    assert im.size == (3 * 64 + 4 * 2, band + 4 * 64 + 5 * 2)
    ink = _label_ink(im, band, [(2 + j * 66, 64) for j in range(3)])
    assert all(n > 20 for n in ink), ink  # a word over each column
    assert len(set(ink)) == 3  # three different words
    truth = torch.from_numpy(np.asarray(im)[band + 2 : band + 66, 2 + 2 * 66 : 2 + 2 * 66 + 64].copy())
    assert torch.equal(truth.permute(2, 0, 1), data[0].repeat_interleave(2, -1).repeat_interleave(2, -2))


def test_photo_grid_columns_line_up_under_their_labels(tiny_model, tmp_path):
    paths = []
    for i, (w, h) in enumerate([(60, 40), (30, 50)]):  # a wide and a tall photo
        paths.append(tmp_path / f"{i}.png")
        colour_image(w, h, seed=i).save(paths[-1])
    save_photo_grid(tiny_model, paths, tmp_path / "p.png", ColorizeOptions(), height=100)
    im = Image.open(tmp_path / "p.png")
    band, pad, slot = 20, 4, 150  # the widest photo sets each column's width
    assert im.size == (3 * slot + 4 * pad, band + 2 * (100 + pad) + pad)
    ink = _label_ink(im, band, [(pad + j * (slot + pad), slot) for j in range(3)])
    assert all(n > 20 for n in ink) and len(set(ink)) == 3, ink
    arr = np.asarray(im)
    for j in range(3):  # the tall photo (60 wide at this height) sits centred in its column
        left = pad + j * (slot + pad) + (slot - 60) // 2
        row = arr[band + 2 * pad + 100 + 50, :, :]
        assert (row[left - 1] == 255).all() and not (row[left + 1] == 255).all()


def test_undertrained_hint_below_0_15_of_the_true_colour(tiny_model):
    assert "undertrained" in undertrained_hint(0.05) and "--epochs" in undertrained_hint(0.05)
    assert undertrained_hint(0.5) is None and undertrained_hint(None) is None  # None: truth without colour

    class Gray(torch.nn.Module):  # paints nothing: zero chrominance
        def forward(self, y):
            return torch.zeros(y.shape[0], 2, *y.shape[2:])

    gray = Gray().train()
    data = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    assert model_colour_share(gray, data) == 0.0 and gray.training  # put back in training mode
