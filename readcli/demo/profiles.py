"""The demo's two budgets: the default run (about 10 minutes on 2 CPU cores) and --quick (CI)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from readcli.backbones.moment_detr_config import MomentDETRConfig
from readcli.backbones.umt_config import UMTConfig
from readcli.demo.world import WorldConfig
from readcli.errors import InvalidValueError, choices_text
from readcli.training.loop import TrainSettings

TEF = 2  # the temporal endpoint feature appended to every clip


def demo_backbone(world: WorldConfig) -> MomentDETRConfig:
    """A small Moment-DETR (hidden 64, 2+2 layers) sized to the world's features."""
    return MomentDETRConfig(
        hidden_dim=64, nheads=4, enc_layers=2, dec_layers=2, dim_feedforward=128, num_queries=5,
        input_dropout=0.1, v_feat_dim=world.video_dim + TEF, t_feat_dim=world.text_dim,
    )  # fmt: skip


def demo_umt(world: WorldConfig) -> UMTConfig:
    """A small video-only UMT (hidden 64, one decoder layer) with the boundary head, sized to the world."""
    return UMTConfig(
        hidden_dim=64, nheads=4, ffn_ratio=2, input_dropout=0.1, query_dropout=0.1,
        v_feat_dim=world.video_dim + TEF, a_feat_dim=0, t_feat_dim=world.text_dim, dec_layers=1, max_len=64,
    )  # fmt: skip


@dataclass(frozen=True)
class DemoProfile:
    """World, backbone, pretraining and adaptation settings; `pretrain_digest` names the cache."""

    name: str
    world: WorldConfig
    backbone: MomentDETRConfig
    pretrain: TrainSettings
    adapt: TrainSettings
    train_samples: int  # labelled target queries per seed (the low-resource regime)
    umt: UMTConfig = field(default_factory=UMTConfig)  # the UMT row's backbone (set by _profiles)

    def backbone_config(self, architecture: str) -> Any:
        """The demo backbone of `architecture` ("moment_detr" or "umt")."""
        if architecture not in ("moment_detr", "umt"):
            raise InvalidValueError(f"unknown demo backbone {architecture!r}: choose moment_detr or umt")
        return self.umt if architecture == "umt" else self.backbone

    def pretrain_digest(self, architecture: str = "moment_detr") -> str:
        """What the pretrained backbone depends on: the world, the architecture, the pretraining."""
        parts: dict[str, Any] = {
            "world": asdict(self.world),
            "backbone": self.backbone_config(architecture).to_dict(),
            "pretrain": asdict(self.pretrain),
        }
        if architecture == "umt":  # (the Moment-DETR digest keeps its old form: caches stay valid)
            parts["architecture"] = architecture
            parts["init"] = UMT_INIT  # the config does not show how fresh weights are drawn
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


# How a fresh UMT's weights are drawn; part of the pretraining digest, so a change of initialisation
# (xavier-uniform -> nncore's xavier-normal, 2026-11-23) never reuses a cache made the old way.
UMT_INIT = "xavier-normal"


def _profiles() -> dict[str, DemoProfile]:
    world = WorldConfig()
    default = DemoProfile(
        name="default",
        world=world,
        backbone=demo_backbone(world),
        pretrain=TrainSettings(epochs=40, lr=1e-3, batch_size=32, seed=2018, device="cpu", amp="off"),
        adapt=TrainSettings(epochs=30, lr=1e-3, batch_size=16, device="cpu", amp="off"),
        train_samples=64,
        umt=demo_umt(world),
    )
    small = replace(world, source_videos=80, target_train_videos=40, target_val_videos=40)
    quick = replace(
        default,
        name="quick",
        world=small,
        pretrain=replace(default.pretrain, epochs=4),
        adapt=replace(default.adapt, epochs=2),
        train_samples=16,
    )
    return {"default": default, "quick": quick}


PROFILES: dict[str, DemoProfile] = _profiles()


def demo_profile(name: str) -> DemoProfile:
    profile = PROFILES.get(name)
    if profile is None:
        raise InvalidValueError(f"unknown demo profile {name!r}: choose one of {choices_text(PROFILES)}")
    return profile
