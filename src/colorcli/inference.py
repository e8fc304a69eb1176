"""Colorize photos of any size: working scale, overlapping 32x32 tiles, seamless blending.

The model sees the photo's luma at a working scale where objects look the way
they did in training (``scale`` pixels on the shorter side), cut into
overlapping tiles whose chrominance is blended with a smooth window. The
chrominance is then upsampled to full resolution and joined with the photo's own
full-resolution luma, so the output's luminance is the input's.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from colorcli.errors import InputError

TILE = 32
DEFAULT_SCALE = 64
DEFAULT_MAX_PIXELS = 200_000_000
# Extensions Pillow can write, with the format name and whether it keeps an alpha channel.
OUTPUT_FORMATS = {
    ".png": ("PNG", True),
    ".jpg": ("JPEG", False),
    ".jpeg": ("JPEG", False),
    ".webp": ("WEBP", True),
    ".tif": ("TIFF", True),
    ".tiff": ("TIFF", True),
    ".bmp": ("BMP", False),
}


@dataclass(frozen=True)
class ColorizeOptions:
    """How photos are colorized.

    scale: shorter side, in pixels, of the working image the model sees (photos
    smaller than that are used as they are). overlap: pixels shared by
    neighbouring tiles. saturation: factor on the predicted chrominance.
    max_pixels: larger images are refused as possible decompression bombs.
    """

    scale: int = DEFAULT_SCALE
    overlap: int = 16
    saturation: float = 1.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    tile_batch: int = 512


@dataclass
class LoadedImage:
    """An input photo as 8-bit luma at its displayed orientation, plus what the output keeps."""

    gray: Image.Image  # mode "L", full resolution
    alpha: Image.Image | None
    icc_profile: bytes | None
    exif: bytes | None
    note: str | None = None


def _to_gray(im: Image.Image) -> Image.Image:
    """8-bit Rec. 601 luma of any Pillow mode; 16-bit and float images keep their tonal range."""
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        if im.mode == "F" and a.max(initial=0) <= 1.0:
            top = 1.0
        return Image.fromarray(np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8), "L")
    if im.mode == "L":
        return im
    if im.mode in ("1", "LA", "La"):
        return im.convert("L")
    return im.convert("RGB").convert("L")


def _alpha(im: Image.Image) -> Image.Image | None:
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return im.getchannel("A")
    if im.mode == "P" and "transparency" in im.info:
        return im.convert("RGBA").getchannel("A")
    return None


def load_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Open any image Pillow reads as display-oriented 8-bit luma (+ alpha, ICC profile, EXIF)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except Image.DecompressionBombError:
        raise InputError(
            f"{path}: image is too large (decompression bomb?); raise --max-pixels if you trust it"
        ) from None
    except (OSError, ValueError, SyntaxError) as e:
        raise InputError(f"{path}: not a readable image ({_reason(e)})") from None
    with im:
        w, h = im.size
        if w * h > max_pixels:
            raise InputError(
                f"{path}: {w}x{h} is {w * h:,} pixels, over the limit of {max_pixels:,} "
                "(a decompression bomb?); raise it with --max-pixels if you trust the file"
            )
        frames = getattr(im, "n_frames", 1)
        try:
            im.seek(0)
            im.load()
            icc, exif = im.info.get("icc_profile"), None
            im = ImageOps.exif_transpose(im)
            if "exif" in im.info:
                exif = im.info["exif"]
            gray, alpha = _to_gray(im), _alpha(im)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise InputError(f"{path}: cannot decode image ({_reason(e)})") from None
    note = f"used the first of its {frames} frames" if frames > 1 else None
    return LoadedImage(gray=gray, alpha=alpha, icc_profile=icc, exif=exif, note=note)


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:160] if text else type(e).__name__


def working_size(width: int, height: int, scale: int) -> tuple[int, int]:
    """Size of the image the model sees: shorter side `scale` pixels, never enlarged."""
    f = min(1.0, scale / min(width, height))
    return max(1, round(width * f)), max(1, round(height * f))


def _tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Tile offsets covering 0..length, the last one flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _window(tile: int, overlap: int):
    """Separable smooth blending weights (tile, tile): a raised cosine over the overlap, 1 inside."""
    import torch

    ramp = torch.ones(tile)
    if overlap > 0:
        t = (torch.arange(overlap, dtype=torch.float32) + 0.5) / overlap
        edge = 0.5 - 0.5 * torch.cos(math.pi * t)  # rises smoothly from ~0 to ~1
        ramp[:overlap] = edge
        ramp[-overlap:] = edge.flip(0)
    return ramp[:, None] * ramp[None, :]  # (tile, tile)


def predict_chroma(model, gray: np.ndarray, options: ColorizeOptions):
    """Chrominance of a working-scale gray image: (h, w) uint8 -> (2, h, w) float tensor, -128..128.

    The image is reflect-padded to at least one tile, cut into overlapping tiles,
    run through the model in batches, and the tiles' chrominance is blended.
    """
    import torch
    import torch.nn.functional as F

    h, w = gray.shape
    y = torch.from_numpy(gray).float()[None, None]  # (1, 1, h, w)
    ph, pw = max(TILE, h), max(TILE, w)
    if (ph, pw) != (h, w):
        mode = "reflect" if min(h, w) > 1 and ph - h < h and pw - w < w else "replicate"
        y = F.pad(y, (0, pw - w, 0, ph - h), mode=mode)  # (1, 1, ph, pw)
    stride = TILE - options.overlap
    ys, xs = _tile_starts(ph, TILE, stride), _tile_starts(pw, TILE, stride)
    tiles = torch.stack([y[0, :, r : r + TILE, c : c + TILE] for r in ys for c in xs])  # (T, 1, 32, 32)
    device = next(model.parameters()).device
    with torch.inference_mode():
        chroma = torch.cat(
            [model(b.to(device)).float().cpu() for b in tiles.split(options.tile_batch)]
        )  # (T, 2, 32, 32)
    weight = _window(TILE, options.overlap)
    acc = torch.zeros(2, ph, pw)
    norm = torch.zeros(1, ph, pw)
    for i, (r, c) in enumerate((r, c) for r in ys for c in xs):
        acc[:, r : r + TILE, c : c + TILE] += chroma[i] * weight
        norm[:, r : r + TILE, c : c + TILE] += weight
    return (acc / norm)[:, :h, :w] * options.saturation  # (2, h, w)


def colorize_gray(model, gray: Image.Image, options: ColorizeOptions) -> Image.Image:
    """Colorize an 8-bit gray image; the RGB result has its size and (to within rounding) its luma."""
    w, h = gray.size
    ww, wh = working_size(w, h, options.scale)
    small = (
        gray
        if (ww, wh) == (w, h)
        else gray.resize((ww, wh), Image.Resampling.BOX if ww * 2 < w else Image.Resampling.BILINEAR)
    )
    chroma = predict_chroma(model, np.array(small), options)  # (2, wh, ww)
    planes = (chroma + 128).round().clamp(0, 255).byte().numpy()  # (2, wh, ww)
    cb, cr = (Image.fromarray(p, "L") for p in planes)
    if (ww, wh) != (w, h):
        cb, cr = (p.resize((w, h), Image.Resampling.BICUBIC) for p in (cb, cr))
    return compose_rgb(gray, cb, cr)


def compose_rgb(gray: Image.Image, cb: Image.Image, cr: Image.Image, strip: int = 512) -> Image.Image:
    """Full-resolution RGB from 8-bit Y, Cb, Cr planes (Cb/Cr offset by 128), in row strips.

    Chrominance is fitted into the RGB gamut per pixel so the output's luma is Y;
    strips keep the float working memory bounded whatever the photo's size.
    """
    import torch

    from colorcli.color import ycbcr_to_rgb_u8

    w, h = gray.size
    ys, cbs, crs = (np.asarray(p) for p in (gray, cb, cr))  # (h, w) uint8 each
    out = np.empty((h, w, 3), dtype=np.uint8)
    for r in range(0, h, strip):
        y = torch.from_numpy(ys[r : r + strip].astype(np.float32))[None, None]  # (1, 1, s, w)
        c = torch.from_numpy(np.stack([cbs[r : r + strip], crs[r : r + strip]]).astype(np.float32) - 128)[None]
        out[r : r + strip] = ycbcr_to_rgb_u8(y, c)[0].permute(1, 2, 0).numpy()  # (s, w, 3)
    return Image.fromarray(out, "RGB")


def output_format(path: Path) -> tuple[str, bool]:
    """Pillow format name for an output path and whether it can keep alpha."""
    try:
        return OUTPUT_FORMATS[path.suffix.lower()]
    except KeyError:
        raise InputError(f"{path}: cannot write this format; use one of {', '.join(OUTPUT_FORMATS)}") from None


def save_result(rgb: Image.Image, loaded: LoadedImage, path: Path) -> None:
    """Write the colorized image atomically, keeping alpha, ICC profile and EXIF where the format can."""
    from colorcli.checkpoint import atomic_write

    fmt, keeps_alpha = output_format(path)
    out = rgb
    if loaded.alpha is not None and keeps_alpha:
        out = rgb.copy()
        out.putalpha(loaded.alpha)
    params: dict[str, Any] = {}
    if loaded.icc_profile and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        params["icc_profile"] = loaded.icc_profile
    if loaded.exif and fmt in ("PNG", "JPEG", "WEBP"):
        params["exif"] = loaded.exif
    if fmt == "JPEG":
        params.update(quality=95, subsampling=0)
    if fmt == "PNG":
        params["compress_level"] = 1  # fast; PNG stays lossless
    atomic_write(path, lambda f: out.save(f, format=fmt, **params))


def colorize_file(model, src: Path, dst: Path, options: ColorizeOptions) -> LoadedImage:
    """Colorize one file into dst; raises InputError with the file name on bad input."""
    loaded = load_image(src, options.max_pixels)
    rgb = colorize_gray(model, loaded.gray, options)
    save_result(rgb, loaded, dst)
    return loaded


# ---------------------------------------------------------------- batches of files


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path


def expand_inputs(inputs: list[Path], recursive: bool) -> list[tuple[Path, Path]]:
    """(file, path relative to the output folder without suffix) for every input file.

    Folders contribute their images (recursively with `recursive`, keeping
    subfolders); glob patterns are expanded; files are taken as they are.
    """
    from colorcli.data import find_images

    found: list[tuple[Path, Path]] = []
    for item in inputs:
        if item.is_dir():
            for f in find_images(item, recursive=recursive):
                found.append((f, f.relative_to(item).with_suffix("")))
        elif any(ch in str(item) for ch in "*?[") and not item.exists():
            matches = (
                sorted(Path().glob(str(item)))
                if not item.is_absolute()
                else sorted(Path(item.anchor).glob(str(item.relative_to(item.anchor))))
            )
            found.extend((m, Path(m.stem)) for m in matches if m.is_file())
        else:
            found.append((item, Path(item.stem)))
    return found


def plan_jobs(inputs: list[Path], output: Path, recursive: bool = False, fmt: str = "png") -> list[Job]:
    """Where each input's result goes.

    One input file and an output that is not an existing folder: the output is
    that file. Otherwise the output is a folder and each result is named after its
    input's stem with `fmt`'s suffix; inputs whose names would collide
    (photo.jpg and photo.png) are told apart by their original suffix
    (photo_jpg.png, photo_png.png), so nothing is silently overwritten.
    """
    from colorcli.errors import UsageError

    files = expand_inputs(inputs, recursive)
    if not files:
        raise UsageError("no input images found")
    single = len(inputs) == 1 and not inputs[0].is_dir() and len(files) == 1 and not output.is_dir()
    if single and not any(ch in str(inputs[0]) for ch in "*?["):
        output_format(output)
        return [Job(files[0][0], output)]
    suffix = "." + fmt.lower().lstrip(".")
    output_format(Path("x" + suffix))
    by_name: dict[Path, list[tuple[Path, Path]]] = {}
    for src, rel in files:
        by_name.setdefault(rel, []).append((src, rel))
    jobs = []
    for rel, group in by_name.items():
        for src, _ in group:
            name = rel if len(group) == 1 else rel.with_name(f"{rel.name}_{src.suffix.lstrip('.').lower()}")
            jobs.append(Job(src, output / f"{name}{suffix}"))
    return jobs


@dataclass
class BatchReport:
    done: int = 0
    skipped: int = 0
    failed: int = 0

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def run_jobs(
    model, jobs: list[Job], options: ColorizeOptions, overwrite: bool = False, as_json: bool = False, err_console=None
) -> BatchReport:
    """Colorize every job; a failing file is reported on stderr and the batch goes on."""
    import json
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from colorcli.errors import ColorcliError

    report = BatchReport()
    inputs = {j.src.resolve() for j in jobs}
    progress = Progress(
        TextColumn("colorizing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[ips]:.1f} img/s"),
        TimeElapsedColumn(),
        console=err_console,
        disable=as_json or err_console is None or len(jobs) < 2,
        transient=False,
    )
    with progress:
        task = progress.add_task("", total=len(jobs), ips=0.0)
        t_start = time.perf_counter()
        for job in jobs:
            t0 = time.perf_counter()
            status, error = "ok", None
            try:
                if job.dst.resolve() in inputs:
                    raise InputError(f"{job.src}: output {job.dst} would overwrite an input; choose another -o")
                if job.dst.exists() and not overwrite:
                    status = "skipped"
                else:
                    job.dst.parent.mkdir(parents=True, exist_ok=True)
                    loaded = colorize_file(model, job.src, job.dst, options)
                    if loaded.note and err_console is not None and not as_json:
                        err_console.print(f"note: {job.src}: {loaded.note}", highlight=False)
            except ColorcliError as e:
                status, error = "failed", str(e)
            except OSError as e:  # disk full, permissions: name the file, go on with the rest
                status, error = "failed", f"{job.src}: cannot write {job.dst}: {e.strerror or e}"
            if status == "ok":
                report.done += 1
            elif status == "skipped":
                report.skipped += 1
            else:
                report.failed += 1
                if err_console is not None:
                    progress.console.print(f"error: {error}", style="red", highlight=False, soft_wrap=True)
            if as_json:
                record = {
                    "input": str(job.src),
                    "output": str(job.dst),
                    "status": status,
                    "seconds": round(time.perf_counter() - t0, 4),
                }
                if error:
                    record["error"] = error
                print(json.dumps(record), flush=True)
            progress.update(
                task,
                advance=1,
                ips=(report.done + report.skipped + report.failed) / max(time.perf_counter() - t_start, 1e-9),
            )
    return report
