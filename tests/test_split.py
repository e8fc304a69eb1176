from pathlib import Path

import torch

from colorcli.split import changed_files, files_digest, fitting_batch, split_indices
from helpers import colour_image


def test_fitting_batch_is_the_largest_power_of_two_each_process_can_share():
    assert [fitting_batch(n, 1) for n in (0, 1, 2, 3, 21, 64, 127)] == [None, None, 2, 2, 16, 64, 64]
    assert fitting_batch(21, 4) == 16 and fitting_batch(3, 4) is None
    assert fitting_batch(40, 3) == 24 and fitting_batch(100, 6) == 96 and fitting_batch(1, 2) is None


def test_split_is_disjoint_complete_and_reproducible():
    tr, va = split_indices(100, 0.1, seed=3)
    assert len(va) == 10 and len(tr) == 90
    assert sorted(torch.cat([tr, va]).tolist()) == list(range(100))
    tr2, va2 = split_indices(100, 0.1, seed=3)
    assert torch.equal(va, va2)


def test_files_digest_follows_the_names_the_run_read_not_where_the_folder_lies(image_folder, tmp_path):
    import shutil

    assert files_digest("cifar10", 10) is None
    before = files_digest(str(image_folder), 20)
    run = {"images": 20, "files_digest": before}
    moved = Path(shutil.move(image_folder, tmp_path / "moved"))
    assert files_digest(str(moved), 20) == before and changed_files(str(moved), run) is None
    colour_image(40, 40).save(moved / "b" / "zzz.png")  # sorts after the first 20: not theirs
    assert changed_files(str(moved), run) is None
    (moved / "a" / "img1.png").rename(moved / "a" / "img1b.png")
    assert "added, removed or renamed" in changed_files(str(moved), run)
    few = tmp_path / "few"
    few.mkdir()
    for i in range(3):
        colour_image(40, 40, seed=i).save(few / f"{i}.png")
    assert changed_files(str(few), run) == "3 image files, but the run split 20 images"


def test_too_few_images_for_any_batch_say_so_without_blaming_the_default_batch(tmp_path):
    import pytest
    import torch

    from colorcli.config import TrainConfig
    from colorcli.errors import UsageError
    from colorcli.split import split_for_training

    data = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)  # one to train on, one held out
    with pytest.raises(UsageError, match="only 1 training images, too few for a batch of 2 .1 held out"):
        split_for_training(TrainConfig(dataset="x", val_fraction=0.5).filled(), data, 1, print)
