"""The one build step pyproject.toml cannot state: ship the preset cards inside the package.

The cards are edited in the repository's top-level `models/`; the build maps that folder onto
`readcli/models/` (package `readcli.models`, JSON data only), so a wheel and an sdist carry them (an
editable install reads the checkout's `models/`). Everything else about the build is in pyproject.toml.
`readcli.backbones.presets.cards_dir` finds them at run time (docs/backbones.md).
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["readcli", "readcli.*"]), "readcli.models"],
    package_dir={"readcli.models": "models"},
    package_data={"readcli": ["py.typed"], "readcli.models": ["*.json"]},
)
