"""The built-in offline benchmark behind `readcli demo`: a synthetic grounding world, pretraining on
its source domain, low-resource adaptation to its shifted target domain, and the paper-style table.
See docs/demo.md.
"""

from __future__ import annotations

from readcli.demo.methods import DEMO_METHODS, DemoMethod
from readcli.demo.profiles import PROFILES, DemoProfile
from readcli.demo.world import WorldConfig, ensure_world

__all__ = ["DEMO_METHODS", "PROFILES", "DemoMethod", "DemoProfile", "WorldConfig", "ensure_world"]
