"""The scores: PSNR, SSIM and colourfulness, against figures worked out by hand."""

import math

import numpy as np
import pytest
import torch

from colorcli.metrics import (
    colorfulness,
    colour_share,
    gaussian_window,
    mse_per_image,
    psnr_of_mse,
    psnr_per_image,
    ssim_per_image,
)


def _images(seed: int, n: int = 2, size: int = 24) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 3, size, size), dtype=np.uint8))


def test_psnr_of_a_known_error_and_of_an_exact_copy():
    truth = torch.full((2, 3, 8, 8), 100, dtype=torch.uint8)
    pred = truth.clone()
    pred[0] += 10  # every sample 10 levels off: MSE 100
    psnr = psnr_per_image(pred, truth)
    assert psnr[0].item() == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-4)
    assert psnr[1].item() == 100.0  # an exact copy: the cap, not infinity
    assert mse_per_image(pred, truth).tolist() == [100.0, 0.0]
    assert psnr_of_mse(torch.tensor([255.0**2])).item() == pytest.approx(0.0)


def test_ssim_is_one_for_identical_images_and_falls_with_noise():
    truth = _images(1)
    assert torch.allclose(ssim_per_image(truth, truth), torch.ones(2), atol=1e-5)
    noise = torch.from_numpy(np.random.default_rng(2).normal(0, 20, truth.shape)).round()
    noisy = (truth.double() + noise).clamp(0, 255).to(torch.uint8)
    noisier = (truth.double() + 3 * noise).clamp(0, 255).to(torch.uint8)
    s1, s3 = ssim_per_image(noisy, truth), ssim_per_image(noisier, truth)
    assert (s1 < 1).all() and (s3 < s1).all() and (s3 > -1).all()


def test_ssim_is_symmetric_and_works_on_images_smaller_than_its_window():
    a, b = _images(3, size=5), _images(4, size=5)
    assert torch.allclose(ssim_per_image(a, b), ssim_per_image(b, a), atol=1e-6)
    assert ssim_per_image(a, a).shape == (2,)


def test_the_gaussian_window_is_normalised_and_symmetric():
    g = gaussian_window(11)
    assert g.shape == (11,) and g.sum().item() == pytest.approx(1.0) and torch.equal(g, g.flip(0))
    assert g.argmax().item() == 5


def test_colourfulness_of_gray_is_zero_and_of_a_flat_colour_is_its_mean_term():
    gray = torch.full((1, 3, 6, 6), 128, dtype=torch.uint8)
    assert colorfulness(gray).item() == 0.0
    red = torch.zeros((1, 3, 6, 6), dtype=torch.uint8)
    red[:, 0] = 200  # rg = 200, yb = 100 everywhere: no spread, so M = 0.3 * sqrt(200^2 + 100^2)
    assert colorfulness(red).item() == pytest.approx(0.3 * math.hypot(200, 100), rel=1e-6)


def test_colourfulness_of_a_two_colour_image_by_hand():
    im = torch.zeros((1, 3, 2, 2))
    im[0, 0, 0] = 255  # top row red, bottom row black: rg is 255 or 0, yb is 127.5 or 0
    std = math.hypot(127.5, 63.75)  # the population spread of each, half-and-half
    mean = math.hypot(127.5, 63.75)
    assert colorfulness(im).item() == pytest.approx(std + 0.3 * mean, rel=1e-6)


def test_a_colour_share_is_none_where_the_truth_has_no_colour():
    assert colour_share(20.0, 40.0) == 0.5
    assert colour_share(20.0, 0.0) is None
