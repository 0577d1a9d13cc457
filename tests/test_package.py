"""The curated package root: every public name resolves, and importing the root stays light."""

from __future__ import annotations

import subprocess
import sys

import readcli


def test_every_exported_name_resolves() -> None:
    for name in readcli.__all__:
        assert getattr(readcli, name) is not None, name


def test_importing_the_package_does_not_import_torch() -> None:
    code = "import sys, readcli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
