"""colorcli: colorize grayscale photos with a small PyTorch model.

In a notebook::

    import colorcli
    colour = colorcli.colorize("old-photo.jpg")          # or a PIL image, any mode
    colour = colorcli.colorize(img, model="cifar10", saturation=1.2)

The shipped models run through onnxruntime, so ``colorize`` imports no torch; a torch model
(``load_model``, a ``.pt`` or ``.safetensors`` path) imports it on the first call.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from colorcli.engine import TileModel
    from colorcli.model import Colorizer

try:
    __version__ = version("colorcli")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from colorcli.errors import ColorcliError  # what colorize raises for what a caller can fix; imports no torch

__all__ = ["ColorcliError", "__version__", "colorize", "load_model"]


def load_model(name_or_path: str | os.PathLike[str] | None = None, *, device: str = "cpu") -> Colorizer:
    """A torch model ready to colorize, train or score: a shipped model by name ("photo",
    "cifar10"; None or "default": the default), or a checkpoint file (.pt or .safetensors).
    In eval mode, on ``device``. Needs PyTorch (``colorcli[train]``); ``colorize`` does not."""
    from colorcli.checkpoint import INSTALL_TORCH, named_model_path, shipped_model_path
    from colorcli.errors import UsageError

    spec = "default" if name_or_path is None else name_or_path
    if isinstance(spec, str) and _looks_like_a_name(spec):
        path = shipped_model_path(spec)  # an unknown name is refused with the list of names
    else:
        path = named_model_path(spec)
    try:
        from colorcli.checkpoint import load_model as load_file
        from colorcli.checkpoint import pick_device

        return load_file(path).to(pick_device(device))
    except ModuleNotFoundError as e:
        if e.name not in ("torch", "torchvision"):
            raise
        raise UsageError(
            f"load_model needs PyTorch, which is not installed: {INSTALL_TORCH}; "
            'colorize(image, model="cifar10") runs a shipped model without it'
        ) from None


def _looks_like_a_name(spec: str) -> bool:
    """A bare word that is no file here: meant as a shipped model's name, not a checkpoint."""
    return os.path.sep not in spec and "." not in spec and not os.path.exists(spec)


@lru_cache(maxsize=4)
def _shared_model(name: str | None) -> TileModel:
    """Shipped models loaded once per process, for ``colorize(model=None or a name)``: run by
    onnxruntime where it is installed (no torch import), else by torch."""
    from colorcli.checkpoint import open_colorizer

    return open_colorizer(None, name, "cpu")


def colorize(
    image: Image.Image | str | os.PathLike[str],
    *,
    model: Colorizer | str | os.PathLike[str] | None = None,
    scale: int | None = None,
    saturation: float = 1.0,
    max_pixels: int | None = None,
) -> Image.Image:
    """Colorize one photo: the RGB result (RGBA where the input has transparency) has the
    input's displayed size and its luma.

    image: a PIL image in any mode (RGB and other colour images are colorized from their
    luminance; 16-bit gray keeps its tonal range; EXIF orientation is applied) or a path.
    model: a loaded model, a shipped model's name or a checkpoint path (None: the default).
    scale: the working scale in pixels (None: the model's own); saturation: a factor on
    the colour strength (1.0: as the model is set). max_pixels: a path whose image has more
    pixels is refused unread, as a decompression bomb (None: 200 million).
    """
    from colorcli.errors import UsageError
    from colorcli.tiling import ColorizeOptions, colorize_gray

    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1):
        raise UsageError(f"max_pixels must be a whole number of pixels, 1 or more, not {max_pixels!r}")
    net = _resolve_model(model)
    gray, alpha = _gray_and_alpha(image, max_pixels)
    rgb = colorize_gray(net, gray, ColorizeOptions(scale=scale, saturation=saturation))
    if alpha is not None:
        rgb.putalpha(alpha)  # RGB -> RGBA
    return rgb


def _resolve_model(model: Any) -> Any:
    """What colorize's ``model`` names, ready to run: a shipped model, a file, or a model as it is."""
    from colorcli.engine import OnnxTiles, TorchTiles

    if model is None or isinstance(model, str) and _looks_like_a_name(model):
        return _shared_model(model)
    if isinstance(model, (str, os.PathLike)):
        from pathlib import Path

        from colorcli.checkpoint import open_colorizer

        return open_colorizer(Path(model), None, "cpu")  # by suffix, as colorize --checkpoint
    if isinstance(model, (TorchTiles, OnnxTiles)):
        return model
    try:
        import torch
    except ModuleNotFoundError:  # then no torch model can have been handed over either
        torch = None
    if torch is None or not isinstance(model, torch.nn.Module):
        raise TypeError(
            "colorize's model is a loaded model, a shipped model's name or a checkpoint path, "
            f"not {type(model).__name__}"
        )
    return model


def _gray_and_alpha(image: Any, max_pixels: int | None) -> tuple[Image.Image, Image.Image | None]:
    """8-bit luma at the displayed orientation, and the alpha mask if any, of a PIL image or a file."""
    from pathlib import Path

    from PIL import Image as PILImage

    from colorcli.errors import InputError
    from colorcli.images import DEFAULT_MAX_PIXELS, alpha_mask, exif_oriented, load_image, stored_mode, to_gray8

    if isinstance(image, (str, os.PathLike)):
        limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
        loaded = load_image(Path(image), limit, limit_option="colorize(max_pixels=...)")
        return loaded.gray, loaded.alpha
    if not isinstance(image, PILImage.Image):
        raise TypeError(f"colorize takes a PIL image or a path, not {type(image).__name__}")
    if 0 in image.size:
        raise InputError(f"the image is {image.width}x{image.height}: it has no pixels to colorize")
    # An image opened from a file and not yet loaded says how the file stores its samples; one
    # made or loaded in memory holds them as its mode says (an 8-bit L or RGB key is in its units).
    stored = stored_mode(image) or image.mode
    oriented = exif_oriented(image)[0]
    return to_gray8(oriented), alpha_mask(oriented, stored)
