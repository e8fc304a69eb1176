"""Shared fixtures: tiny models, checkpoints and synthetic images made in the test."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from colorcli.checkpoint import save_checkpoint
from colorcli.model import build_model
from helpers import TINY, colour_image


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's cache or the network from tests."""
    monkeypatch.setenv("COLORCLI_DATA_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("COLORCLI_CIFAR_MIRROR", raising=False)


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return build_model(TINY).eval()


@pytest.fixture
def tiny_checkpoint(tmp_path: Path, tiny_model) -> Path:
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, {"model_config": TINY.to_dict(), "model": tiny_model.state_dict(), "metrics": {}})
    return path


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """24 colour images of mixed sizes and formats in nested folders."""
    root = tmp_path / "photos"
    for i in range(24):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        colour_image(32 + 7 * (i % 5), 32 + 5 * (i % 3), seed=i).save(sub / f"img{i}.{'png' if i % 3 else 'jpg'}")
    return root


@pytest.fixture
def mix_folder(tmp_path: Path) -> Path:
    """12 colour images of 32x32 to mix in: a folder of its own, apart from ``image_folder``."""
    root = tmp_path / "mix"
    root.mkdir()
    for i in range(12):
        colour_image(32, 32, seed=100 + i).save(root / f"m{i}.png")
    return root
