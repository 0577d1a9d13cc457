"""readcli: READ-PVLA for low-resource video-language models.

The package root stays light (no torch import) so that `readcli --help` starts fast; the public names
below are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "ReadcliError": "readcli.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'readcli' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
