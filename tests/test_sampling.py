"""What each training step sees: the epoch's order on each rank, the views and the mix share."""

import pytest
import torch

from colorcli.data import epoch_order, iter_batches
from colorcli.distributed import Dist
from colorcli.run import TrainConfig
from colorcli.sampling import MixBatches, Views, balanced_weights, rank_order
from helpers import colour_image


def test_each_rank_takes_the_same_number_of_full_batches_and_a_disjoint_share():
    n, steps, per_step, world = 23, 2, 4, 2
    shards = [rank_order(n, None, 0, 0, steps, per_step, Dist(r, world)) for r in range(world)]
    assert [len(s) for s in shards] == [steps * per_step] * world
    assert not set(shards[0].tolist()) & set(shards[1].tolist())
    assert torch.equal(torch.cat(shards).sort().values, epoch_order(n, 0, 0)[: steps * per_step * world].sort().values)
    assert torch.equal(rank_order(n, None, 0, 0, 5, 4, Dist()), epoch_order(n, 0, 0)[:20])  # one process: the shuffle
    assert [len(b) for b in iter_batches(shards[1], per_step)] == [per_step] * steps


def test_balanced_orders_draw_by_weight():
    weights = torch.tensor([0.0] * 10 + [1.0] * 10, dtype=torch.float64)
    order = rank_order(20, weights / weights.sum(), 3, 1, 5, 4, Dist())
    assert len(order) == 20 and (order >= 10).all()


def test_balance_weighs_each_source_and_says_what_it_became(tmp_path):
    for i, source in enumerate(["big"] * 6 + ["small"] * 2):
        (tmp_path / source).mkdir(exist_ok=True)
        colour_image(8, 8, seed=i).save(tmp_path / source / f"{i}.png")
    said = []
    cfg = TrainConfig(dataset=str(tmp_path), balance=1.0)
    weights = balanced_weights(cfg, 8, torch.arange(8), said.append)
    assert weights.shape == (8,) and torch.isclose(weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.isclose(weights[0] * 3, weights[-1])
    assert said == ["balancing 2 sources (--balance 1): big 75% -> 50%, small 25% -> 50% of draws"]
    assert balanced_weights(TrainConfig(dataset=str(tmp_path), balance=0.0), 8, torch.arange(8), said.append) is None
    flat = tmp_path / "big"  # one source: a --balance given there says that it does nothing
    assert balanced_weights(TrainConfig(dataset=str(flat), balance=0.5), 6, torch.arange(6), said.append) is None
    assert said[-1].startswith("note: --balance 0.5 has no subfolders")


def test_the_mix_share_cycles_through_its_shuffle_and_ranks_take_turns():
    data = torch.arange(5, dtype=torch.uint8).view(5, 1, 1, 1).expand(5, 3, 2, 2).contiguous()  # image i is all i
    ranks = [MixBatches(data, 0, 0, 2, Dist(r, 2), tile=4) for r in range(2)]
    assert ranks[0].batch(0).shape == (2, 3, 4, 4)
    seen = [int(b[0, 0, 0]) for step in range(5) for r in ranks for b in r.batch(step)]  # 20 images: 4 cycles
    assert sorted(seen) == sorted(list(range(5)) * 4)
    assert seen[:5] == ranks[0].order.tolist()


def test_views_are_tiles_with_the_mix_after_them():
    data = torch.randint(0, 256, (6, 3, 12, 12), dtype=torch.uint8)
    mix = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    cfg = TrainConfig(seed=0, zoom=0.0, scale_min=8, scale_max=12).filled()
    views = Views(data, cfg, 0, 8, MixBatches(mix, 0, 0, 2, Dist(), 8))
    assert views.batch(torch.tensor([0, 3, 5]), step=0).shape == (5, 3, 8, 8)
    plain = Views(data, TrainConfig(seed=0, zoom=0.0).filled(), 0, 12)
    idx = torch.tensor([1, 2])
    flipped = torch.where(plain.flips[idx].view(-1, 1, 1, 1), data[idx].flip(-1), data[idx])
    assert torch.equal(plain.batch(idx, step=0), flipped)  # at its size: only the flips


def test_a_native_mix_lays_its_images_side_by_side_at_their_own_size():
    mix = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    native = MixBatches(mix, 0, 0, 2, Dist(), tile=8, native=True)
    tiles = native.batch(0)  # (2, 3, 8, 8): four 4x4 images to a tile
    assert tiles.shape == (2, 3, 8, 8)
    idx = native.order[:8]
    shown = torch.where(native.flips[idx].view(-1, 1, 1, 1), mix[idx].flip(-1), mix[idx])  # as drawn, flipped
    assert torch.equal(tiles[0, :, :4, :4], shown[0]) and torch.equal(tiles[0, :, :4, 4:], shown[1])
    assert torch.equal(tiles[0, :, 4:, :4], shown[2]) and torch.equal(tiles[1, :, 4:, 4:], shown[7])
    nxt = native.order[8]  # the next step goes on through the shuffle
    assert torch.equal(native.batch(1)[0, :, :4, :4], mix[nxt].flip(-1) if native.flips[nxt] else mix[nxt])
    enlarged = MixBatches(mix, 0, 0, 2, Dist(), tile=8)
    assert enlarged.batch(0).shape == (2, 3, 8, 8) and enlarged.across == 1


def test_a_native_mix_needs_a_tile_of_whole_images():
    with pytest.raises(ValueError, match="a 6-pixel tile is no whole number of 4-pixel images"):
        MixBatches(torch.zeros((4, 3, 4, 4), dtype=torch.uint8), 0, 0, 2, Dist(), tile=6, native=True)
