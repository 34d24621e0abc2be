"""scale_vqa: build, audit and publish cross-scale pathology VQA benchmarks.

The top floor: assembles ``curation`` and ``baselines`` into the dataset product.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scale-vqa")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
