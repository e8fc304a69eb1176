"""colorcli: colorize grayscale photos with a small PyTorch model."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("colorcli")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
