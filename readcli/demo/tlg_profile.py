"""The grounding demo's sizes: worlds, backbones, pretraining, adaptation, learning-rate grids.

Two profiles: `default` (the pre-registered benchmark of docs/demo.md) and `quick` (a smoke test of
the whole path within seconds; its numbers mean nothing).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from readcli.backbones.moment_detr.config import MomentDETRConfig
from readcli.backbones.umt.config import UMTConfig
from readcli.demo.methods import DemoMethod
from readcli.demo.world import WorldConfig
from readcli.errors import InvalidValueError
from readcli.training.loop import TrainSettings

TEF = 2  # the temporal endpoint feature appended to every clip
# How a fresh UMT's weights are drawn; part of its pretraining digest (the config does not show it).
UMT_INIT = "xavier-normal+nncore-tables"  # position tables and cross-modal tokens randn/sqrt(d), as nncore
ARCHITECTURES: tuple[str, ...] = ("moment_detr", "umt")
# mastery the pretrained backbone must reach on the source's held-out queries (issue 14)
MASTERY = {"R1@0.5": 70.0, "mAP": 50.0}


def demo_moment_detr(world: WorldConfig) -> MomentDETRConfig:
    """A small Moment-DETR (hidden 64, 2+2 layers, 5 queries) sized to the world's features."""
    return MomentDETRConfig(
        hidden_dim=64, nheads=4, enc_layers=2, dec_layers=2, dim_feedforward=128, num_queries=5,
        input_dropout=0.1, v_feat_dim=world.video_dim + TEF, t_feat_dim=world.text_dim,
    )  # fmt: skip


def demo_umt(world: WorldConfig) -> UMTConfig:
    """A small video-only UMT (hidden 64, one decoder layer) with the boundary head, sized to the world."""
    return UMTConfig(
        hidden_dim=64, nheads=4, ffn_ratio=2, input_dropout=0.1, query_dropout=0.1,
        v_feat_dim=world.video_dim + TEF, a_feat_dim=0, t_feat_dim=world.text_dim, dec_layers=1,
        max_len=2 * world.partial_scale * world.max_clips,
    )  # fmt: skip


@dataclass(frozen=True)
class TlgProfile:
    """Everything a grounding demo run depends on; `pretrain_digest` names the backbone cache."""

    name: str
    world: WorldConfig
    pretrain: TrainSettings
    adapt: TrainSettings  # lr is taken from the grid; seed from the run
    train_samples: int  # labelled target queries per seed (the low-resource regime)
    lr_grid: tuple[float, ...]  # the parameter-efficient methods' grid
    full_lr_grid: tuple[float, ...]  # full and partial fine-tuning's grid (same number of points)

    def __post_init__(self) -> None:
        if len(self.lr_grid) != len(self.full_lr_grid):
            raise InvalidValueError("every method must get the same number of learning-rate points")

    def backbone_config(self, architecture: str) -> Any:
        if architecture not in ARCHITECTURES:
            raise InvalidValueError(f"unknown demo backbone {architecture!r}: choose moment_detr or umt")
        return demo_umt(self.world) if architecture == "umt" else demo_moment_detr(self.world)

    def grid(self, method: DemoMethod) -> tuple[float, ...]:
        return self.full_lr_grid if method.full_lr else self.lr_grid

    def pretrain_digest(self, architecture: str) -> str:
        """What a pretrained backbone depends on: the world, the architecture, the pretraining."""
        parts: dict[str, Any] = {
            "world": asdict(self.world),
            "architecture": architecture,
            "backbone": self.backbone_config(architecture).to_dict(),
            "pretrain": asdict(self.pretrain),
            "loop": "demo-fit-1",  # readcli/demo/fit.py
        }
        if architecture == "umt":
            parts["init"] = UMT_INIT
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def _profiles() -> dict[str, TlgProfile]:
    world = WorldConfig()
    default = TlgProfile(
        name="default",
        world=world,
        pretrain=TrainSettings(epochs=20, lr=1e-3, batch_size=32, seed=2018, device="cpu", amp="off"),
        adapt=TrainSettings(epochs=15, lr=1e-3, batch_size=16, device="cpu", amp="off"),
        train_samples=64,
        lr_grid=(1e-3, 3e-3, 1e-2),
        full_lr_grid=(1e-4, 3e-4, 1e-3),
    )
    small = replace(
        world, source_videos=60, source_val_videos=30, pool_videos=40, dev_queries=12, test_videos=40
    )
    quick = replace(
        default,
        name="quick",
        world=small,
        pretrain=replace(default.pretrain, epochs=2),
        adapt=replace(default.adapt, epochs=1),
        train_samples=16,
        lr_grid=(1e-3, 1e-2),
        full_lr_grid=(1e-4, 1e-3),
    )
    return {"default": default, "quick": quick}


TLG_PROFILES: dict[str, TlgProfile] = _profiles()
