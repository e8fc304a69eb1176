import math

import pytest
import torch

from colorcli.color import ycbcr_to_rgb_u8
from colorcli.errors import UsageError
from colorcli.metrics import colorfulness, psnr_per_image
from colorcli.model import ChromaBins, ModelConfig, build_model, count_parameters, psnr_objective


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(width=4, depth=2),
        ModelConfig(width=4, depth=3, head_scale=1),
        ModelConfig(width=4, depth=2, head="regress", loss="mse"),
        ModelConfig(width=4, depth=2, head="regress", loss="logmse", head_scale=1),
        ModelConfig(arch="seed", width=4, head="regress", loss="mse"),
        ModelConfig(width=4, depth=2, aux_logmse=1.0, norm="group"),
        ModelConfig(width=4, depth=2, loss="psnr", vivid=0.05, temperature=0.5),
        ModelConfig(width=4, depth=2, head="regress", loss="psnr"),
    ],
    ids=["bins", "bins-fullres", "regress", "logmse", "seed", "bins-aux-group", "bins-psnr", "regress-psnr"],
)
def test_shapes_range_and_gradients(config):
    torch.manual_seed(0)
    model = build_model(config)
    y = torch.randint(0, 256, (3, 1, 32, 32)).float()
    rgb = torch.randint(0, 256, (3, 3, 32, 32)).float()
    cbcr = model(y)
    assert cbcr.shape == (3, 2, 32, 32)
    assert cbcr.abs().max() <= 128 * 1.02 + 1  # natural units
    loss = model.loss(model(y, raw=True), y, rgb)
    assert loss.ndim == 0 and math.isfinite(loss.item())
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    assert sum(g.abs().sum().item() for g in grads) > 0


def test_unet_is_fully_convolutional():
    model = build_model(ModelConfig(width=4, depth=2)).eval()
    assert model(torch.zeros(1, 1, 64, 48)).shape == (1, 2, 64, 48)


def test_seed_refuses_other_sizes():
    model = build_model(ModelConfig(arch="seed", width=4, head="regress", loss="mse"))
    with pytest.raises(UsageError, match="32x32"):
        model(torch.zeros(1, 1, 64, 64))


def test_unknown_arch_and_loss_are_usage_errors():
    with pytest.raises(UsageError, match="unknown architecture"):
        build_model(ModelConfig(arch="vit"))
    with pytest.raises(UsageError, match="regress head trains with mse, l1, huber, logmse, psnr, not 'nope'"):
        build_model(ModelConfig(width=4, depth=2, head="regress", loss="nope"))


def test_each_head_accepts_only_its_losses():
    build_model(ModelConfig(width=4, depth=2, loss="psnr"))
    with pytest.raises(UsageError, match="bins head trains with ce, psnr, not 'mse'"):
        build_model(ModelConfig(width=4, depth=2, loss="mse"))
    with pytest.raises(UsageError, match="regress head"):
        build_model(ModelConfig(width=4, depth=2, head="regress", loss="ce"))


def test_seed_and_the_colour_reward_refuse_losses_they_cannot_use():
    with pytest.raises(UsageError, match="seed architecture trains with mse"):
        build_model(ModelConfig(arch="seed", width=4, head="regress", loss="psnr"))
    with pytest.raises(UsageError, match="vivid .* needs loss psnr"):
        build_model(ModelConfig(width=4, depth=2, vivid=0.1))


@pytest.mark.parametrize("vivid", [0.0, 0.1])
def test_psnr_loss_has_finite_gradients_on_flat_images(vivid):
    """Black, white and gray images give exactly gray outputs, where sqrt has no derivative."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=4, depth=2, loss="psnr", vivid=vivid, saturation=0.0))
    y = torch.tensor([0.0, 255.0, 128.0]).view(3, 1, 1, 1).expand(3, 1, 32, 32)
    rgb = y.expand(3, 3, 32, 32)
    loss = model.loss(model(y, raw=True), y, rgb)
    loss.backward()
    assert math.isfinite(loss.item())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_configs_saved_before_vivid_existed_still_load():
    old = ModelConfig(width=4, depth=2).to_dict()
    del old["vivid"]
    assert ModelConfig.from_dict(old).vivid == 0.0


def test_psnr_objective_is_minus_the_eval_psnr_plus_the_colour_reward():
    torch.manual_seed(0)
    truth = torch.randint(0, 256, (4, 3, 8, 8)).float()
    pred = (truth + torch.randn_like(truth) * torch.tensor([1.0, 5, 20, 60]).view(4, 1, 1, 1)).round().clamp(0, 255)
    mse = (pred - truth).square().flatten(1).mean(1)
    expected_psnr = (10 * torch.log10(255.0**2 / (mse + 1.0))).mean()
    assert psnr_objective(pred, truth, 0.0).item() == pytest.approx(-expected_psnr.item(), rel=1e-5)
    # PSNR as eval measures it, up to the +1 that caps a perfect image
    assert -psnr_objective(pred, truth, 0.0).item() <= psnr_per_image(pred.byte(), truth.byte()).mean().item()
    reward = psnr_objective(pred, truth, 0.0) - psnr_objective(pred, truth, 0.1)
    assert reward.item() == pytest.approx(0.1 * colorfulness(pred).mean().item(), rel=1e-5)


def test_psnr_loss_scores_the_output_as_shipped():
    """The loss sees the same colours forward returns (decoding, saturation, gamut fitting)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=4, depth=2, loss="psnr", temperature=0.5, saturation=1.3)).eval()
    y = torch.randint(0, 256, (2, 1, 32, 32)).float()
    rgb = torch.randint(0, 256, (2, 3, 32, 32)).float()
    with torch.no_grad():
        loss = model.loss(model(y, raw=True), y, rgb)
        shipped = ycbcr_to_rgb_u8(y, model(y))
    eval_psnr = psnr_per_image(shipped, rgb.byte()).mean().item()
    assert -loss.item() == pytest.approx(eval_psnr, abs=0.05)  # rounding to 8 bits and the +1 aside


def test_soft_labels_have_the_exact_mean():
    bins = ChromaBins(16.0)
    cbcr = (torch.rand(2, 2, 5, 5) - 0.5) * 250
    idx, w = bins.soft_labels(cbcr)
    assert torch.allclose(w.sum(1), torch.ones(2, 5, 5))
    mean = torch.einsum("bkhw,bkhwc->bchw", w, bins.points[idx])  # (B, 2, H, W)
    assert torch.allclose(mean, cbcr, atol=1e-3)


def test_prior_correction_recovers_the_posterior():
    """Weighted CE is minimised by q ∝ w p; dividing w back out must give p."""
    bins = ChromaBins(64.0)  # 5x5 grid
    counts = torch.arange(1, bins.num_classes + 1, dtype=torch.float64)
    bins.set_prior(counts, rebalance=0.3)
    p = torch.softmax(torch.randn(bins.num_classes), 0)
    q = p * bins.log_weights.exp()
    q = q / q.sum()
    logits = q.log().view(1, -1, 1, 1)
    decoded = bins.decode(logits, temperature=1.0, prior_correction=1.0)[0, :, 0, 0]
    assert torch.allclose(decoded, p @ bins.points, atol=1e-3)


def test_rebalancing_weights_favour_rare_colours():
    bins = ChromaBins(64.0)
    counts = torch.ones(bins.num_classes, dtype=torch.float64)
    counts[12] = 1000.0  # gray is common
    bins.set_prior(counts, rebalance=0.5)
    w = bins.log_weights.exp()
    assert w[12] < w[0]
    p = counts / counts.sum()
    assert abs((p * w.double()).sum().item() - 1.0) < 1e-4


def test_default_model_is_small_enough_to_ship():
    assert count_parameters(build_model(ModelConfig())) < 3_000_000


def test_confidence_fades_colour_where_the_posterior_is_flat():
    from colorcli.model import ChromaBins

    bins = ChromaBins(16.0)
    k = bins.num_classes
    sure = torch.full((1, k, 1, 1), -20.0)
    sure[0, bins.num_classes - 1] = 20.0  # all mass on the corner bin (128, 128)
    flatish = torch.zeros(1, k, 1, 1)
    flatish[0, k - 1] = 1.0  # a nearly flat posterior leaning the same way
    logits = torch.cat([sure, flatish])  # (2, K, 1, 1)
    plain = bins.decode(logits, 1.0, 0.0)
    faded = bins.decode(logits, 1.0, 0.0, confidence=1.0)
    assert torch.allclose(faded[0], plain[0], atol=1e-3)  # sure: kept
    assert faded[1].abs().max() < 0.1 * plain[1].abs().max()  # unsure: faded


def test_context_branch_makes_each_position_see_the_whole_input():
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=4, depth=2, context=True, tile=32)).eval()
    torch.nn.init.normal_(model.context.mlp[2].weight)  # the branch starts at zero; make it speak
    y = torch.full((1, 1, 64, 64), 100.0)
    far = y.clone()
    far[..., 48:, 48:] = 250.0  # change only a far corner
    with torch.no_grad():
        a, b = model(y), model(far)
    assert not torch.allclose(a[..., :8, :8], b[..., :8, :8])  # the opposite corner's colour moved
