"""A run's images: which they are (a folder's file names and their number, wherever the
folder now lies) and how they split into training and validation (``val_fraction`` and
``seed``), with the batch fitted to a small folder.

Training (starting and resuming, ``run.py`` and ``sampling.py``) and ``eval --holdout``
(``evaluate.py``) check and draw them here, so they agree on what a run held out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from colorcli.config import BATCH_SIZE, TrainConfig
from colorcli.data import CIFAR_NAMES, grayscale_images
from colorcli.errors import DataError, UsageError
from colorcli.finding import find_images, plugin_note


def is_dataset(spec: str) -> bool:
    """Whether ``spec`` names a dataset here: CIFAR, or a folder that exists."""
    return spec in CIFAR_NAMES or Path(spec).is_dir()


def files_digest(spec: str, first: int) -> str | None:
    """A digest of the names (within the folder) of a folder dataset's first ``first`` image
    files, in the sorted order they are read in; None for CIFAR.

    Stored with a run (``first`` = its number of images), it tells whether files were
    added, removed or renamed among those the run split, which would move images between
    its training and validation sides; files sorting after them do not count. It holds
    wherever the folder now lies and however its files decode.
    """
    if spec in CIFAR_NAMES:
        return None
    return _names_digest(Path(spec), find_images(Path(spec))[:first])


def _names_digest(root: Path, paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.relative_to(root).as_posix().encode() + b"\n")
    return h.hexdigest()[:16]


def changed_files(spec: str, run: dict) -> str | None:
    """Why a folder's files are not those a run split, by name (checked before decoding), or
    None. ``run`` holds the checkpoint's "images" and "files_digest"; runs from before they
    were stored are not checked."""
    if not run.get("files_digest") or run.get("images") is None or spec in CIFAR_NAMES:
        return None  # CIFAR is not a folder of files; a folder run's count tells it apart
    root, first = Path(spec), run["images"]
    heic: list[Path] = []
    paths = find_images(root, needing_plugin=heic)
    # HEIC photos count only where their plugin is installed: a run made with it differs without it.
    hint = f" ({plugin_note(heic)})" if heic else ""
    if len(paths) < first:
        return f"{len(paths)} image files, but the run split {first} images{hint}"
    if _names_digest(root, paths[:first]) != run["files_digest"]:
        return f"image files were added, removed or renamed among those the run split{hint}"
    return None


def folder_names(spec: str) -> tuple[int, str] | None:
    """A --mix folder's identity: how many image files it holds and a digest of their names
    (all of them: a mix is read whole); None for CIFAR."""
    if spec in CIFAR_NAMES:
        return None
    paths = find_images(Path(spec))
    return len(paths), _names_digest(Path(spec), paths)


def changed_mix(spec: str, state: dict) -> str | None:
    """Why a resumed run's --mix folder does not hold the image files it mixed in, or None
    (CIFAR, and runs from before the mix's names were stored, are not checked)."""
    if spec in CIFAR_NAMES or not state.get("mix_digest"):
        return None
    count, digest = folder_names(spec) or (0, "")
    if count != state.get("mix_images"):
        return f"{count} image files, not the {state.get('mix_images')} the run mixed in"
    if digest != state["mix_digest"]:
        return f"image files were added, removed or renamed among the {count} the run mixed in"
    return None


def changed_count(count: int, run: dict) -> str | None:
    """Why a dataset is not the one a run split by its number of images, or None (runs from
    before the count was stored are not checked)."""
    if run.get("images") is not None and run["images"] != count:
        return f"{count} images, but the run split {run['images']}"
    return None


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random split of range(n) into (train, validation) index tensors."""
    if n < 2:
        raise DataError(f"need at least 2 images to hold out a validation split, got {n}")
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_val:], perm[:n_val]


def check_mix_share(batch: int, world: int, share: float) -> None:
    """Refuse a --mix share that leaves a step no image of the dataset, or none of the mix."""
    local = batch // world
    mixed = round(local * share)
    if mixed >= local:
        raise UsageError(
            f"--mix-share {share:g} of a batch of {local} per process is all of it: no room for --dataset's "
            "images; lower --mix-share or raise --batch-size"
        )
    if mixed == 0:
        raise UsageError(
            f"--mix-share {share:g} of a batch of {local} per process is no image: nothing of --mix would be "
            "seen; raise --mix-share or --batch-size"
        )


def run_split(cfg: TrainConfig, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The (training, validation) indices a run with these settings splits ``n`` images into."""
    return split_indices(n, cfg.val_fraction, cfg.seed)


def split_for_training(
    cfg: TrainConfig, data: torch.Tensor, world: int, say: Callable[..., None]
) -> tuple[torch.Tensor, torch.Tensor, int, TrainConfig]:
    """(training indices, validation indices, black-and-white images left out, config) of the
    images ``data`` of a run with settings ``cfg``: its fixed split, with the batch fitted to a small folder when none
    was given, or a usage error saying why these images cannot train at this batch size."""
    n_images = len(data)
    if n_images < 2:
        raise UsageError(f"{cfg.dataset}: {n_images} image; training needs at least 2 (one is held out to validate)")
    train_idx, val_idx = run_split(cfg, n_images)
    dropped = 0
    if cfg.skip_gray:
        gray = grayscale_images(data[train_idx])
        train_idx, dropped = train_idx[~gray], int(gray.sum())
    batch = cfg.batch_size or BATCH_SIZE
    if len(train_idx) < batch and cfg.batch_size is None:
        # The default batch fits CIFAR; a small folder of one's own photos gets the largest that fits.
        fitted = fitting_batch(len(train_idx), world)
        if fitted:
            say(
                f"note: {len(train_idx)} training images, fewer than a batch of {batch}: "
                f"using batches of {fitted} (--batch-size sets it)"
            )
            batch = fitted
    cfg, was = replace(cfg, batch_size=batch), cfg
    if cfg.mix:
        check_mix_share(batch, world, cfg.mix_share)
    if len(train_idx) < batch and was.batch_size is None and not dropped:  # not even a batch of 2 fits
        raise UsageError(
            f"{cfg.dataset}: only {len(train_idx)} training images, too few for a batch of 2 "
            f"({len(val_idx)} held out to validate); add images"
        )
    if len(train_idx) < batch:
        hint = f"; lower --batch-size (now {batch})"
        if dropped:
            enough = len(train_idx) + dropped >= batch
            hint = f"; {dropped} black-and-white images were left out (--keep-gray keeps them)" + (
                "" if enough else hint
            )
        raise UsageError(f"only {len(train_idx)} training images for a batch of {batch}{hint}")
    if len(val_idx) < world:
        raise UsageError(f"only {len(val_idx)} validation images for {world} processes; raise --val-fraction")
    return train_idx, val_idx, dropped, cfg


def fitting_batch(images: int, world: int) -> int | None:
    """The largest batch of ``world`` times a power of two (so every process takes the same
    share, at least 2 images a step in all) that ``images`` training images fill at least
    once; None if none does."""
    per_process = images // world
    if per_process < 1 or world * per_process < 2:
        return None
    batch = world * (1 << (per_process.bit_length() - 1))  # world x the largest power of two <= per_process
    return batch if batch >= 2 else None
