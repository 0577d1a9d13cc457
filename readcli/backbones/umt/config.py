"""UMT's configuration: the settings of the official `umt_small.py` / `umt_base.py` that shape the network.

The official code (TencentARC/UMT, built on nncore) describes a model as nested config dicts; readcli
keeps the handful of numbers that decide the state-dict layout and the forward pass. UMT-S (one
decoder layer) is the default; UMT-B has three. `a_feat_dim = 0` builds the video-only model (no
audio encoder, no cross-modal encoder); `t_feat_dim = 0` builds the query-free model of the official
YouTube Highlights configs (`no_query.py`). `boundary_head` adds the moment head (`BoundaryHead`);
the official highlight-detection configs (`hd.py`) have only the saliency head. See docs/umt.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from readcli.errors import InvalidValueError, reject_unknown_keys

_INT_FIELDS = (
    "hidden_dim", "nheads", "ffn_ratio", "v_feat_dim", "a_feat_dim", "t_feat_dim",
    "bottleneck_tokens", "cross_layers", "dec_layers", "max_len",
)  # fmt: skip
# Bounds that keep a typo (hidden_dim 10**12) from sizing an allocation: far above any released model.
MAX_SIZE = 65_536  # widths, heads, ratios, tokens, position-table rows
MAX_LAYERS = 64
MAX_PARAMETERS = 2e9  # 8 GB of float32: UMT-B has about 15 million
_FLOAT_FIELDS = ("dropout", "input_dropout", "query_dropout")


@dataclass(frozen=True)
class UMTConfig:
    """UMT-S by default (official `umt_small.py`, video 2048-d I3D RGB+flow, audio 2048-d PANN)."""

    hidden_dim: int = 256
    nheads: int = 8
    ffn_ratio: int = 4  # feed-forward width = ffn_ratio * hidden_dim
    dropout: float = 0.1  # attention, feed-forward and position dropout (nncore's `p`)
    input_dropout: float = 0.5  # UniModalEncoder dropout on the raw features
    query_dropout: float = 0.3  # QueryGenerator dropout on the raw text features
    v_feat_dim: int = 2048
    a_feat_dim: int = 2048  # 0: video only (no audio encoder, no cross-modal encoder)
    t_feat_dim: int = 512  # 0: no query generator (the official YouTube Highlights configs)
    bottleneck_tokens: int = 4  # BottleneckTransformer's shared tokens
    cross_layers: int = 1  # BottleneckTransformer layers
    dec_layers: int = 1  # 1: UMT-S, 3: UMT-B
    max_len: int = 5000  # rows of each learnable position table (longest video in clips)
    boundary_head: bool = True  # the moment head (center / window / offset per clip)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "boundary_head":
                if not isinstance(value, bool):
                    raise InvalidValueError(f"UMT option boundary_head={value!r}: expected true or false")
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidValueError(f"UMT option {f.name}={value!r}: expected a number")
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, int):
                raise InvalidValueError(f"UMT option {name}={value!r}: expected an integer")
            minimum = 0 if name in ("a_feat_dim", "t_feat_dim") else 1
            top = MAX_LAYERS if name in ("cross_layers", "dec_layers") else MAX_SIZE
            if not minimum <= value <= top:
                raise InvalidValueError(f"UMT option {name}={value}: must be in {minimum}..{top}")
        for name in _FLOAT_FIELDS:
            if not 0.0 <= getattr(self, name) < 1.0:
                raise InvalidValueError(f"UMT option {name}={getattr(self, name)}: must be in [0, 1)")
        width = self.hidden_dim * (1 + self.ffn_ratio)
        layers = 2 + self.cross_layers + self.dec_layers
        approx = layers * 4 * self.hidden_dim * width + self.hidden_dim * (
            self.v_feat_dim + self.a_feat_dim + self.t_feat_dim + 2 * self.max_len
        )
        if approx > MAX_PARAMETERS:
            raise InvalidValueError(
                f"UMT options describe about {approx:.3g} parameters (hidden_dim={self.hidden_dim}, "
                f"ffn_ratio={self.ffn_ratio}, max_len={self.max_len}): at most {MAX_PARAMETERS:.0e} are built"
            )
        if self.hidden_dim % self.nheads:
            raise InvalidValueError(
                f"UMT hidden_dim={self.hidden_dim}: must be divisible by nheads={self.nheads}"
            )

    @property
    def has_audio(self) -> bool:
        return self.a_feat_dim > 0

    @property
    def has_query(self) -> bool:
        return self.t_feat_dim > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UMTConfig:
        """Build from readcli's JSON form (exactly the dataclass fields; unknown keys are errors)."""
        reject_unknown_keys(cls, data, "UMT config key(s)")
        return cls(**dict(data))


def tiny_umt_config(**overrides: Any) -> UMTConfig:
    """A small UMT for tests: hidden 32, 4 heads, video-only, 2 decoder layers, 64 positions."""
    base: dict[str, Any] = dict(
        hidden_dim=32, nheads=4, ffn_ratio=2, v_feat_dim=18, a_feat_dim=0, t_feat_dim=12,
        dec_layers=2, max_len=64,
    )  # fmt: skip
    base.update(overrides)
    return UMTConfig(**base)
