"""Moment-DETR's configuration, read from the official option fields (opt.json or the checkpoint's Namespace).

The official code keeps its whole argparse Namespace; only a few of its fields shape the network. Those
are the fields of `MomentDETRConfig` (same names as the official options). The rest are training,
data or bookkeeping options and are ignored by name; any other field is an error, so that an option
that would change the network is never dropped silently. See docs/backbones.md.

One trap: the official `opt.json` is written *before* `v_feat_dim += 2` adds the temporal endpoint
feature (TEF), while the Namespace pickled into a checkpoint is taken *after* it. So the same run says
`v_feat_dim: 512` in opt.json and 514 in model_best.ckpt; `tef_included` says which one is at hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from readcli.errors import InputFileError, InvalidValueError, choices_text, reject_unknown_keys
from readcli.records import read_json_file

SPAN_LOSS_TYPES = ("l1", "ce")
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "int": int,
    "float": (int, float),
    "bool": bool,
    "str": str,
}
# Bounds that keep a typo (hidden_dim 10**12) from sizing an allocation: far above any released model.
MAX_SIZE = 65_536  # widths, heads, queries, table rows
MAX_LAYERS = 64
MAX_PARAMETERS = 2e9  # 8 GB of float32: the released model has 4.8 million
TEF_DIM = 2  # the temporal endpoint feature (start, end) / n_clips appended to each clip's features

# Official options that do not change the network: training, data, evaluation and bookkeeping
# (moment_detr/config.py BaseOptions and TestOptions, plus what parse() adds to the Namespace).
TRAINING_ONLY_OPTIONS = frozenset(
    {
        "dset_name", "eval_split_name", "debug", "data_ratio", "results_root", "exp_id", "seed",
        "device", "num_workers", "no_pin_memory", "pin_memory", "lr", "lr_drop", "wd", "n_epoch",
        "max_es_cnt", "bsz", "eval_bsz", "grad_clip", "eval_untrained", "resume", "resume_all",
        "start_epoch", "clip_length", "max_windows", "train_path", "eval_path", "no_norm_vfeat",
        "no_norm_tfeat", "v_feat_dirs", "t_feat_dir", "ctx_mode", "use_tef", "use_video",
        "txt_drop_ratio", "temperature", "lw_saliency", "saliency_margin", "set_cost_span",
        "set_cost_giou", "set_cost_class", "span_loss_coef", "giou_loss_coef", "label_loss_coef",
        "eos_coef", "contrastive_align_loss_coef", "no_sort_results", "max_before_nms",
        "max_after_nms", "conf_thd", "nms_thd", "no_hard_neg", "no_easy_neg", "results_dir",
        "eval_id", "model_dir", "ckpt_filepath", "train_log_filepath", "eval_log_filepath",
        "tensorboard_log_dir", "train_log_txt_formatter", "eval_log_txt_formatter", "dset_domain",
        "q_feat_type", "max_pred_l", "min_pred_l",
    }
)  # fmt: skip

# Options that would change the network in a way this implementation does not build: the value it
# supports, and why. A different value is refused instead of ignored.
FIXED_OPTIONS: dict[str, tuple[tuple[Any, ...], str]] = {
    "pre_norm": ((False,), "pre-norm layers are not part of the released Moment-DETR"),
    "position_embedding": (("sine", "v2"), "the official code builds only the sine encoding"),
    "a_feat_dir": ((None,), "audio inputs belong to forks, not to Moment-DETR"),
    "a_feat_dim": ((None, 0), "audio inputs belong to forks, not to Moment-DETR"),
}


@dataclass(frozen=True)
class MomentDETRConfig:
    """The official options that shape Moment-DETR. `v_feat_dim` is the model's video input width,
    TEF included (514 for CLIP + TEF)."""

    hidden_dim: int = 256
    nheads: int = 8
    enc_layers: int = 2
    dec_layers: int = 2
    dim_feedforward: int = 1024
    dropout: float = 0.1
    input_dropout: float = 0.5
    num_queries: int = 10
    n_input_proj: int = 2
    v_feat_dim: int = 514
    t_feat_dim: int = 512
    max_q_l: int = 32  # rows of the (trainable) text position table, kept even when unused
    max_v_l: int = 75  # span head width when span_loss_type == "ce"
    use_txt_pos: bool = False
    span_loss_type: str = "l1"
    aux_loss: bool = True
    contrastive_align_loss: bool = False
    contrastive_hdim: int = 64

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            expected = _FIELD_TYPES[str(f.type)]
            if isinstance(value, bool) != (f.type == "bool") or not isinstance(value, expected):
                raise InvalidValueError(f"Moment-DETR option {f.name}={value!r}: expected type {f.type}")
        for name in ("hidden_dim", "nheads", "enc_layers", "dec_layers", "dim_feedforward", "num_queries",
                     "v_feat_dim", "t_feat_dim", "max_q_l", "max_v_l", "contrastive_hdim"):  # fmt: skip
            top = MAX_LAYERS if name in ("enc_layers", "dec_layers") else MAX_SIZE
            if not 1 <= getattr(self, name) <= top:
                raise InvalidValueError(
                    f"Moment-DETR option {name}={getattr(self, name)}: must be in 1..{top}"
                )
        approx = (self.enc_layers + self.dec_layers) * (
            4 * self.hidden_dim**2 + 2 * self.hidden_dim * self.dim_feedforward
        )
        approx += self.hidden_dim * (self.v_feat_dim + self.t_feat_dim + self.max_q_l + self.max_v_l)
        if approx > MAX_PARAMETERS:
            raise InvalidValueError(
                f"Moment-DETR options describe about {approx:.3g} parameters (hidden_dim={self.hidden_dim}, "
                f"dim_feedforward={self.dim_feedforward}, {self.enc_layers}+{self.dec_layers} layers): "
                f"at most {MAX_PARAMETERS:.0e} are built"
            )
        if self.hidden_dim % self.nheads or self.hidden_dim % 2:
            raise InvalidValueError(
                f"Moment-DETR hidden_dim={self.hidden_dim}: "
                f"must be even and divisible by nheads={self.nheads}"
            )
        if self.n_input_proj not in (1, 2, 3):
            raise InvalidValueError(f"Moment-DETR n_input_proj={self.n_input_proj}: valid values are 1, 2, 3")
        if self.span_loss_type not in SPAN_LOSS_TYPES:
            raise InvalidValueError(
                f"Moment-DETR span_loss_type={self.span_loss_type!r}: valid values are "
                f"{choices_text(SPAN_LOSS_TYPES)}"
            )
        for name in ("dropout", "input_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise InvalidValueError(f"Moment-DETR {name}={getattr(self, name)}: must be in [0, 1)")

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, tef_included: bool) -> MomentDETRConfig:
        """Build from official option fields; `tef_included` is True for a checkpoint's Namespace and
        False for an opt.json (see the module docstring)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - names - TRAINING_ONLY_OPTIONS - set(FIXED_OPTIONS))
        if unknown:
            raise InvalidValueError(
                f"unknown Moment-DETR option(s) {_first(unknown)}: not a known training-only option, and "
                "readcli will not ignore an option that might change the network"
            )
        for name, (allowed, why) in FIXED_OPTIONS.items():
            if name in options and options[name] not in allowed:
                raise InvalidValueError(
                    f"Moment-DETR option {name}={options[name]!r} is not supported: {why}"
                )
        missing = sorted(names - set(options))
        if missing:
            raise InvalidValueError(f"Moment-DETR options are missing {_first(missing)}")
        values = {name: options[name] for name in names}
        if not tef_included:
            values["v_feat_dim"] = _video_width(options)
        return cls(**values)

    @classmethod
    def from_opt_json(cls, path: str | Path) -> MomentDETRConfig:
        """Read an official opt.json (written before the TEF width is added)."""
        data = read_json_object(path)
        try:
            return cls.from_options(data, tef_included=False)
        except InvalidValueError as err:
            raise InputFileError(f"{path}: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MomentDETRConfig:
        """Build from readcli's own JSON form (exactly the dataclass fields; unknown keys are errors)."""
        reject_unknown_keys(cls, data, "Moment-DETR config key(s)")
        return cls(**dict(data))


def tiny_moment_detr_config(**overrides: Any) -> MomentDETRConfig:
    """A small Moment-DETR for tests: hidden 32, feed-forward 64, 2+2 layers, 4 heads, 5 queries."""
    base: dict[str, Any] = dict(
        hidden_dim=32, nheads=4, enc_layers=2, dec_layers=2, dim_feedforward=64, num_queries=5,
        v_feat_dim=18, t_feat_dim=12, max_q_l=16, max_v_l=20,
    )  # fmt: skip
    base.update(overrides)
    return MomentDETRConfig(**base)


def _video_width(options: Mapping[str, Any]) -> int:
    """The official parse(): no video features unless ctx_mode says 'video'; +2 when it says 'tef'."""
    ctx_mode = options.get("ctx_mode", "video_tef")
    if not isinstance(ctx_mode, str):
        raise InvalidValueError(
            f"Moment-DETR option ctx_mode={ctx_mode!r}: expected a string like 'video_tef'"
        )
    width = options["v_feat_dim"] if "video" in ctx_mode else 0
    if not isinstance(width, int):
        raise InvalidValueError(f"Moment-DETR option v_feat_dim={width!r}: expected an int")
    return width + (TEF_DIM if "tef" in ctx_mode else 0)


def read_json_object(path: str | Path) -> dict[str, Any]:
    """Read a JSON file whose top level is an object; one-line InputFileError otherwise."""
    path = Path(path)
    data = read_json_file(path)  # bounded nesting, no NaN/Infinity constants
    if not isinstance(data, dict):
        raise InputFileError(f"{path}: expected a JSON object at the top level, found {type(data).__name__}")
    return data


def _first(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")
