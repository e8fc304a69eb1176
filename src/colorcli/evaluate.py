"""Scoring a model against the gray-copy baseline, and comparison grids."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from colorcli.color import gray_to_rgb_u8, luma_u8, ycbcr_to_rgb_u8
from colorcli.data import grayscale_images
from colorcli.errors import ColorcliError, InputError, UsageError, torchvision_unusable, warn
from colorcli.finding import find_images, is_image_name, no_images_found, plugin_note
from colorcli.folders import skipped_warning
from colorcli.images import load_rgb

if TYPE_CHECKING:
    from PIL import Image

    from colorcli.tiling import ColorizeOptions

from colorcli.metrics import colorfulness, colour_share, mse_per_image, psnr_of_mse, psnr_per_image, ssim_per_image


@dataclass
class Scores:
    """Per-image figures of one method, each a (N,) tensor."""

    psnr: torch.Tensor
    mse: torch.Tensor
    ssim: torch.Tensor
    colorfulness: torch.Tensor

    @classmethod
    def of(cls, pred: torch.Tensor, truth: torch.Tensor) -> Scores:
        return cls(
            psnr_per_image(pred, truth), mse_per_image(pred, truth), ssim_per_image(pred, truth), colorfulness(pred)
        )

    @staticmethod
    def cat(parts: list[Scores]) -> Scores:
        fields = ("psnr", "mse", "ssim", "colorfulness")
        return Scores(*(torch.cat([getattr(p, f) for p in parts]) for f in fields))  # each (N,)

    def summary(self) -> dict[str, float]:
        pooled = self.mse.double().mean().item()
        return {
            "psnr": self.psnr.double().mean().item(),
            "psnr_pooled": psnr_of_mse(torch.tensor(pooled)).item(),
            "ssim": self.ssim.double().mean().item(),
            "colorfulness": self.colorfulness.double().mean().item(),
        }


def colorize_batch(model: torch.nn.Module, rgb_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(gray copy, colorized) uint8 (B, 3, H, W) of true colour images (B, 3, H, W) uint8, run on
    the model's device, returned on the images' own."""
    y = luma_u8(rgb_u8)  # (B, 1, H, W) what a user's gray photo holds
    weights = next(model.parameters(), y.float())  # a module without weights (a test double) takes floats
    with torch.inference_mode():
        chroma = model(y.to(weights.device, weights.dtype)).float().to(y.device)  # (B, 2, H, W)
        pred = ycbcr_to_rgb_u8(y.float(), chroma)
    return gray_to_rgb_u8(y), pred


def summarize(
    model_scores: Scores, gray_scores: Scores, truth_colorfulness: torch.Tensor, bw: torch.Tensor | None = None
) -> dict[str, Any]:
    """Flat figures: psnr, psnr_pooled, ssim, colorfulness, each also for gray_ and truth_colorfulness.

    bw (N,) bool marks black-and-white originals. The gray copy of one is exact, so its
    PSNR is the 100 dB cap, and any colour at all costs about 65-70 dB on that image: 1%
    of such images move a mean over all images by about 0.7 dB. The same figures over the
    colour originals only come as ``color_*``.
    """
    out: dict[str, Any] = {"images": int(model_scores.psnr.numel())}
    out.update(model_scores.summary())
    out.update({f"gray_{k}": v for k, v in gray_scores.summary().items()})
    out["truth_colorfulness"] = truth_colorfulness.double().mean().item()
    out["colorfulness_ratio"] = colour_share(out["colorfulness"], out["truth_colorfulness"])
    out["psnr_gain_db"] = out["psnr"] - out["gray_psnr"]
    if bw is None:
        bw = torch.zeros_like(model_scores.psnr, dtype=torch.bool)
    out["bw_originals"] = int(bw.sum())
    keep = ~bw
    if not keep.any():  # nothing to score colour on: the keys stay, as null in JSON
        out.update(color_psnr=None, color_gray_psnr=None, color_psnr_gain_db=None, color_colorfulness_ratio=None)
        return out
    psnr, gray = model_scores.psnr[keep].double().mean().item(), gray_scores.psnr[keep].double().mean().item()
    cf = model_scores.colorfulness[keep].double().mean().item()
    truth_cf = truth_colorfulness[keep].double().mean().item()
    out.update(
        color_psnr=psnr,
        color_gray_psnr=gray,
        color_psnr_gain_db=psnr - gray,
        color_colorfulness_ratio=colour_share(cf, truth_cf),
    )
    return out


def evaluate_tensor(model: torch.nn.Module, data: torch.Tensor, batch_size: int = 500) -> dict[str, Any]:
    """Score a model on (N, 3, H, W) uint8 colour images, batched (each batch on the model's device)."""
    mine, gray, truth_cf = [], [], []
    for rgb in data.split(batch_size):
        g, p = colorize_batch(model, rgb)
        mine.append(Scores.of(p, rgb))
        gray.append(Scores.of(g, rgb))
        truth_cf.append(colorfulness(rgb))
    return summarize(Scores.cat(mine), Scores.cat(gray), torch.cat(truth_cf), grayscale_images(data))  # (N,) each


def _read_photos(paths: list[Path], unreadable: list[tuple[Path, str]]) -> Iterator[tuple[Path, Any]]:
    """(path, display-oriented 8-bit RGB PIL image) of each readable photo, one at a time; the
    others go to ``unreadable`` with the reason."""
    for path in paths:
        try:
            rgb = load_rgb(path)
        except ColorcliError as e:  # skip the file as training does
            unreadable.append((path, str(e)))
            continue
        yield path, rgb


def photo_folder(paths: list[Path]) -> Path:
    """The folder the photos were found in (their common parent), for messages and tables."""
    return Path(os.path.commonpath([p.absolute().parent for p in paths])) if paths else Path()


def holdout_images(
    checkpoint: Path | None,
    dataset: str | None,
    data_dir: Path | None,
    mirror: str | None = None,
    size: int = 32,
) -> torch.Tensor:
    """The validation images a run held out, (N, 3, S, S) uint8 (a folder's at ``size``, the
    run's tile; CIFAR's at 32), from the training config stored with ``checkpoint``.

    dataset None means the run's own dataset; a name is the folder or CIFAR set to split,
    for a run whose folder has moved. A dataset with another number of images, or other
    file names, than the run had is refused, since its split would differ.
    """
    from colorcli.checkpoint import read_weights
    from colorcli.data import CIFAR_NAMES, load_dataset, resize_images
    from colorcli.run import TrainConfig, stored_settings
    from colorcli.split import changed_count, changed_files, is_dataset, run_split

    _, _, extras = read_weights(checkpoint)
    if not extras.get("train_config"):
        raise ColorcliError(f"{checkpoint or 'the default model'}: has no training config, so no known holdout split")
    tc = TrainConfig.from_dict(stored_settings(checkpoint or "the default model", extras, "train_config")).filled()
    source = tc.dataset if dataset is None else dataset
    if not is_dataset(source):
        raise UsageError(
            f"{source}: not a folder here; the model was trained on {tc.dataset!r} (as named where training ran), "
            "so pass --dataset with that folder's path from here"
        )
    refuse = "; its holdout cannot be re-created from these (some would be images it trained on)"
    if dataset is not None and (source in CIFAR_NAMES) != (tc.dataset in CIFAR_NAMES):  # found before any download
        raise UsageError(f"{source}: not the kind of data the run split (it trained on {tc.dataset!r}){refuse}")
    changed = changed_files(source, extras)  # by name, before decoding anything
    if changed:
        raise UsageError(f"{source}: {changed}{refuse}")
    # As training validated: decoded at its largest working scale (a photo run's), then brought to the tile.
    stored = tc.scale_max or size
    data = load_dataset(source, data_dir or tc.data_dir, train=True, mirror=mirror, limit=tc.limit, size=stored)
    changed = changed_count(len(data), extras)
    if changed:
        raise UsageError(f"{source}: {changed}{refuse}")
    _, val_idx = run_split(tc, len(data))
    return resize_images(data[val_idx], size) if data.shape[-1] != size else data[val_idx]


def evaluate_photos(
    model: torch.nn.Module, paths: list[Path], options: ColorizeOptions, per_image: bool = False
) -> dict[str, Any]:
    """Score the full-resolution tiling path on colour photos (each compared at its own size).

    per_image adds ``per_image``: one record per photo (file, psnr, gray_psnr, psnr_gain_db,
    ssim, colorfulness_ratio), to see which photos a model helps and which it hurts.
    """
    import numpy as np

    from colorcli.tiling import colorize_gray

    mine, gray, truth_cf, bw, read = [], [], [], [], []
    unreadable: list[tuple[Path, str]] = []
    for path, rgb_im in _read_photos(paths, unreadable):
        read.append(path)
        truth = torch.from_numpy(np.asarray(rgb_im).copy()).permute(2, 0, 1)[None]  # (1, 3, H, W)
        pred_im = colorize_gray(model, rgb_im.convert("L"), options)
        pred = torch.from_numpy(np.asarray(pred_im).copy()).permute(2, 0, 1)[None]  # (1, 3, H, W)
        mine.append(Scores.of(pred, truth))
        gray.append(Scores.of(gray_to_rgb_u8(luma_u8(truth)), truth))
        truth_cf.append(colorfulness(truth))
        bw.append(grayscale_images(truth))
    if unreadable:
        warn(skipped_warning(unreadable, photo_folder(paths)))
    if not mine:
        raise InputError(f"{photo_folder(paths)}: none of the {len(paths)} images could be read ({unreadable[0][1]})")
    result = summarize(Scores.cat(mine), Scores.cat(gray), torch.cat(truth_cf), torch.cat(bw))  # (N,) each
    result["unreadable"] = [str(p) for p, _ in unreadable]  # scored without them; the command exits 1
    if per_image:
        result["per_image"] = [
            {
                "file": str(path),
                "psnr": m.psnr.item(),
                "gray_psnr": g.psnr.item(),
                "psnr_gain_db": m.psnr.item() - g.psnr.item(),
                "ssim": m.ssim.item(),
                "colorfulness_ratio": colour_share(m.colorfulness.item(), t.item()),
            }
            for path, m, g, t in zip(read, mine, gray, truth_cf, strict=True)
        ]
    return result


def _write_png(img: Any, path: Path) -> None:
    """Write a grid (a PIL image) atomically; a failed write (a full disk) is one ColorcliError naming it."""
    from colorcli.files import atomic_write

    try:
        atomic_write(path, lambda f: img.save(f, format="PNG"))
    except OSError as e:
        raise ColorcliError(f"{path}: cannot write the grid ({e.strerror or e})") from None


def save_photo_grid(
    model: torch.nn.Module,
    paths: list[Path],
    path: Path,
    options: ColorizeOptions,
    height: int = 200,
    rows_max: int = 8,
) -> None:
    """A PNG with one row for each of the first ``rows_max`` readable photos, colorized at full
    resolution and shown `height` pixels tall: gray | colorized | original."""
    from PIL import Image

    from colorcli.tiling import colorize_gray

    rows = []
    for _, truth in _read_photos(paths, unreadable=[]):
        if len(rows) == rows_max:
            break
        gray = truth.convert("L")
        trio = [gray.convert("RGB"), colorize_gray(model, gray, options), truth]
        w = max(1, round(truth.width * height / truth.height))
        rows.append([t.resize((w, height), Image.Resampling.LANCZOS) for t in trio])
    if not rows:
        raise InputError(f"{path}: no readable photo to draw")
    pad = 4
    slot = max(r[0].width for r in rows)  # columns line up under their labels, each photo centred in its slot
    sheet = Image.new("RGB", (3 * slot + 4 * pad, len(rows) * (height + pad) + pad), "white")
    for i, row in enumerate(rows):
        for j, im in enumerate(row):
            sheet.paste(im, (pad + j * (slot + pad) + (slot - im.width) // 2, pad + i * (height + pad)))
    sheet = _with_column_labels(sheet, [(pad + j * (slot + pad), slot) for j in range(3)], size=14)
    _write_png(sheet, Path(path))


def save_grid(model: torch.nn.Module, data: torch.Tensor, path: Path, rows: int = 8, zoom: int = 3) -> None:
    """A PNG with one row per image: gray | colorized | ground truth (nearest-neighbour zoom)."""
    from PIL import Image

    try:
        from torchvision.utils import make_grid
    except Exception as e:  # noqa: BLE001 - a torchvision built for another torch fails with RuntimeError, OSError, ...
        raise torchvision_unusable(e) from None

    rgb = data[:rows]
    g, p = colorize_batch(model, rgb)
    triplets = torch.stack([g, p, rgb], 1).flatten(0, 1)  # (3*rows, 3, H, W) row-major
    big = triplets.repeat_interleave(zoom, -1).repeat_interleave(zoom, -2)  # (3*rows, 3, zH, zW)
    pad = 2
    grid = make_grid(big, nrow=3, padding=pad, pad_value=255)  # (3, H', W') uint8
    img = Image.fromarray(grid.permute(1, 2, 0).numpy())  # (3, H, W) -> (H, W, 3)
    cell = big.shape[-1]
    img = _with_column_labels(img, [(pad + j * (cell + pad), cell) for j in range(3)], size=10)
    _write_png(img, Path(path))


GRID_LABELS = ("gray input", "colorcli", "original")


def _with_column_labels(sheet: Image.Image, columns: list[tuple[int, int]], size: int) -> Image.Image:
    """The grid ``sheet`` (a PIL image) under a white band that names its columns (GRID_LABELS),
    each label centred over its column; ``columns`` holds each column's (left, width) in pixels."""
    from PIL import Image, ImageDraw, ImageFont, features

    # A bitmap font where Pillow has no FreeType: smaller, but readable.
    font = ImageFont.load_default(size) if features.check_module("freetype2") else ImageFont.load_default()
    band = size + 6
    out = Image.new("RGB", (sheet.width, sheet.height + band), "white")
    out.paste(sheet, (0, band))
    draw = ImageDraw.Draw(out)
    for (left, width), text in zip(columns, GRID_LABELS, strict=True):
        draw.text((left + width / 2, band / 2), text, fill="black", font=font, anchor="mm")
    return out


UNDERTRAINED_SHARE = 0.15  # a model whose colour is below this share of the truth's paints nearly gray


@dataclass(frozen=True)
class EvalRequest:
    """What ``colorcli eval`` scores: the model file ``source`` on ``dataset`` (cifar10, cifar100
    or a folder of colour images), at the model's tile, or with ``full_res`` each photo at its
    own size through colorize's path (working ``scale`` in pixels, None: the model's own).
    ``holdout``: the split the model's own run held out, from ``given`` (None: the run's own
    dataset). ``grid``: also draw rows gray | colorized | original into this PNG."""

    source: Path
    dataset: str
    given: str | None = None
    holdout: bool = False
    full_res: bool = False
    per_image: bool = False
    scale: int | None = None
    limit: int | None = None
    grid: Path | None = None
    data_dir: Path | None = None
    mirror: str | None = None
    device: str = "auto"


def run_eval(req: EvalRequest) -> dict[str, Any]:
    """Scores as ``summarize`` gives them (full_res adds ``unreadable``, and ``per_image`` if asked)."""
    from colorcli.checkpoint import load_model, pick_device
    from colorcli.data import load_dataset
    from colorcli.tiling import ColorizeOptions

    model = load_model(req.source).to(pick_device(req.device))
    if req.full_res:
        paths = folder_photos(req.dataset, req.limit)
        opts = ColorizeOptions() if req.scale is None else ColorizeOptions(scale=req.scale)
        result = evaluate_photos(model, paths, opts, per_image=req.per_image)
        if req.grid is not None:
            save_photo_grid(model, paths, req.grid, opts)
        return result
    tile = int(model.config.tile)  # a folder at the model's tile, as training validated it
    if req.holdout:
        data = holdout_images(req.source, req.given, req.data_dir, req.mirror, size=tile)[: req.limit]
    else:
        data = load_dataset(req.dataset, req.data_dir, train=False, mirror=req.mirror, limit=req.limit, size=tile)
    result = evaluate_tensor(model, data)
    if req.grid is not None:
        save_grid(model, data[torch.randperm(len(data), generator=torch.Generator().manual_seed(0))], req.grid)
    return result


def folder_photos(dataset: str, limit: int | None) -> list[Path]:
    """The photos --full-res scores: the first ``limit`` image files of the folder ``dataset``."""
    if not Path(dataset).is_dir():
        raise UsageError(f"{dataset}: not a folder; --full-res scores a folder of colour photos")
    heic: list[Path] = []
    paths = find_images(Path(dataset), needing_plugin=heic)[:limit]
    if heic and paths:
        warn(f"{dataset}: {plugin_note(heic)}")
    if not paths:
        raise no_images_found(dataset, heic)
    return paths


def undertrained_hint(
    share: float | None, what: str = "the model's colour", advice: str = "train it longer (more --epochs)"
) -> str | None:
    """A one-line hint when a model's colour is far below the truth's, as after an epoch or two
    of training, or None (also where the truth has no colour to compare with)."""
    if share is None or share >= UNDERTRAINED_SHARE:
        return None
    return f"hint: {what} is only {share:.2f} of the truth's (nearly gray): the model looks undertrained; {advice}"


def model_colour_share(model: torch.nn.Module, rgb_u8: torch.Tensor, batch_size: int = 500) -> float | None:
    """The model's mean colorfulness on true-colour images (N, 3, H, W) uint8, as a share of
    theirs (None where they have no colour). The model is put in eval mode for this and back after."""
    from colorcli.engine import in_eval_mode

    with in_eval_mode(model):
        pred = torch.cat([colorfulness(colorize_batch(model, rgb)[1]) for rgb in rgb_u8.split(batch_size)])  # (N,)
    return colour_share(pred.double().mean().item(), colorfulness(rgb_u8).double().mean().item())


def check_has_images(folder: Path) -> None:
    """Refuse a folder with no image to score as a usage error (exit 2), as colorize refuses one.

    Stops at the first image, so a large folder costs next to nothing."""
    if any(is_image_name(p) and p.is_file() for p in folder.rglob("*")):
        return
    heic: list[Path] = []
    find_images(folder, needing_plugin=heic)
    raise no_images_found(folder, heic)


def training_hint(model: torch.nn.Module, val: torch.Tensor, out: Path, images: int = 1000) -> str | None:
    """A hint for train's closing message when the model paints its validation images (the
    first ``images``, (V, 3, H, W) uint8) nearly gray, as a run of an epoch or two does, so
    eval's figures do not puzzle."""
    from colorcli.run import quoted

    share = model_colour_share(model, val[:images])
    advice = (
        f"train longer: a new run with more --epochs, or on from these weights with --init {quoted(out / 'best.pt')}"
    )
    return undertrained_hint(share, "the model's colour on its validation images", advice)
