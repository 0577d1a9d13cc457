"""CLIP through open_clip: one embedding per image, and token-level states for a query.

Dimensions: B batch, S image side (224), D image embedding (512 for ViT-B-32), L context length
(77), W text width (512 for ViT-B-32), N valid tokens of one query (SOT..EOT inclusive).

The token states are the text transformer's `ln_final` output for every valid token, SOT and EOT
included, before the text projection: the layout of Moment-DETR's `qid{qid}.npz` files (its
extractor keeps `last_hidden_state[:valid_len]` with valid_len = the non-zero token count).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from readcli.errors import InputFileError, InvalidValueError
from readcli.features.weights import OPENAI, ResolvedWeights, read_state_dict, resolve_weights
from readcli.logfilter import dropping_records

log = logging.getLogger(__name__)

DEFAULT_MODEL = "ViT-B-32"
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class EncoderSpec:
    """What the features depend on; recorded in every metadata file and compared on resume."""

    model: str
    weights: str  # "openai" or "path"
    weights_sha256: str
    quick_gelu: bool
    image_dim: int
    text_dim: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def resolve_device(device: str) -> torch.device:
    """`auto` picks CUDA when present; `cuda` without a GPU is an error rather than a silent CPU run."""
    name = device.strip().lower()
    base = name.split(":", 1)[0]
    if base not in DEVICES or (":" in name and base != "cuda"):
        raise InvalidValueError(
            f"--device {device!r} is not valid: use one of {', '.join(DEVICES)} (or cuda:N)"
        )
    if base == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise InvalidValueError(
            f"--device {device}: no CUDA device is available here; use --device cpu or auto"
        )
    return torch.device(name)


def check_model_name(model_name: str) -> str:
    # lazy: open_clip (and its model registry) loads only when a CLIP model is named or built
    import open_clip

    known = open_clip.list_models()
    if model_name not in known:
        close = difflib.get_close_matches(model_name, known, n=5, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise InvalidValueError(
            f"--clip-model {model_name!r} is not an open_clip model: {hint}"
            "see open_clip.list_models() for all of them (default ViT-B-32)"
        )
    return model_name


def _load_into(model: torch.nn.Module, weights: ResolvedWeights, model_name: str) -> None:
    state = read_state_dict(weights.path)
    scale, current = state.get("logit_scale"), getattr(model, "logit_scale", None)
    if isinstance(scale, torch.Tensor) and isinstance(current, torch.Tensor) and scale.ndim != current.ndim:
        state["logit_scale"] = scale.reshape(current.shape)  # older files store a 0-d scale
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        raise InputFileError(
            f"--clip-weights {weights.spec}: the file does not fit --clip-model {model_name}: "
            + "; ".join(parts)
        )
    model.load_state_dict(state, strict=True)


class ClipEncoder:
    """A frozen CLIP model in eval mode with its preprocessing, tokenizer and EncoderSpec."""

    def __init__(
        self,
        model: Any,
        preprocess: Callable[[Any], torch.Tensor],
        tokenizer: Any,
        spec: EncoderSpec,
        device: torch.device,
    ) -> None:
        self.model = model
        self.preprocess = preprocess  # PIL image -> (3, S, S) float32, CLIP's own eval transform
        self.tokenizer = tokenizer
        self.spec = spec
        self.device = device

    @classmethod
    def load(
        cls, model_name: str = DEFAULT_MODEL, weights: str = OPENAI, *, device: str = "auto"
    ) -> ClipEncoder:
        """Build `model_name` with open_clip and load `weights` ('openai' or a file path) into it."""
        # lazy: open_clip (and its model registry) loads only when a CLIP model is named or built
        import open_clip

        check_model_name(model_name)
        target = resolve_device(device)
        resolved = resolve_weights(weights, model_name)
        config = open_clip.get_model_config(model_name) or {}
        quick_gelu = bool(config.get("quick_gelu", False)) or weights == OPENAI or resolved.torchscript
        # open_clip warns on the root logger that a model built with pretrained=None is random; we load next
        with dropping_records(logging.getLogger(), "No pretrained weights loaded"):
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=None, force_quick_gelu=quick_gelu
            )
        for name in ("token_embedding", "ln_final", "transformer", "positional_embedding"):
            if not hasattr(model, name):
                raise InvalidValueError(
                    f"--clip-model {model_name} has no CLIP text transformer ({name} missing), so it "
                    "cannot give token-level text features; use a model such as ViT-B-32"
                )
        _load_into(model, resolved, model_name)
        model.eval().requires_grad_(False).to(target)
        tokenizer = open_clip.get_tokenizer(model_name)
        if not hasattr(tokenizer, "sot_token_id"):
            raise InvalidValueError(
                f"--clip-model {model_name} does not use CLIP's BPE tokenizer; use ViT-B-32"
            )
        norm = next(t for t in preprocess.transforms if type(t).__name__ == "Normalize")
        spec = EncoderSpec(
            model=model_name,
            weights="openai" if weights == OPENAI else "path",
            weights_sha256=resolved.sha256,
            quick_gelu=quick_gelu,
            image_dim=int(model.visual.output_dim),
            text_dim=int(model.ln_final.normalized_shape[0]),
            image_size=int(model.visual.image_size[0]),
            mean=tuple(float(v) for v in norm.mean),  # type: ignore[arg-type]
            std=tuple(float(v) for v in norm.std),  # type: ignore[arg-type]
        )
        log.info(
            "loaded %s (%s weights, sha256 %s) on %s", model_name, spec.weights, resolved.sha256[:12], target
        )
        return cls(model, preprocess, tokenizer, spec, target)

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) preprocessed pixels -> (B, D) float32 image embeddings on the CPU, not normalised."""
        features = self.model.encode_image(pixels.to(self.device, non_blocking=True))  # (B, D)
        return features.float().cpu()

    def tokenize_query(self, text: str) -> tuple[list[int], int]:
        """Token ids SOT..EOT for one query, and how many word pieces were dropped to fit the context."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidValueError(f"query {text!r} is empty: give at least one word")
        pieces = self.tokenizer.encode(text)
        if not pieces:
            raise InvalidValueError(f"query {text!r} has no words CLIP's tokenizer can read")
        room = int(self.tokenizer.context_length) - 2  # SOT and EOT take two places
        dropped = max(0, len(pieces) - room)
        return [self.tokenizer.sot_token_id, *pieces[:room], self.tokenizer.eot_token_id], dropped

    @torch.inference_mode()
    def encode_queries(self, texts: Sequence[str]) -> list[torch.Tensor]:
        """One (N, W) float32 tensor of token states per query; over-long queries are truncated, logged."""
        rows = []
        for text in texts:
            ids, dropped = self.tokenize_query(text)
            if dropped:
                log.warning(
                    "query longer than CLIP's %d-token context: dropped its last %d word pieces (%.60r...)",
                    self.tokenizer.context_length,
                    dropped,
                    text,
                )
            rows.append(ids)
        context = int(self.tokenizer.context_length)
        tokens = torch.zeros(len(rows), context, dtype=torch.long)  # (B, L)
        for i, ids in enumerate(rows):
            tokens[i, : len(ids)] = torch.tensor(ids)
        states = self._token_states(tokens.to(self.device))  # (B, L, W)
        return [states[i, : len(ids)].float().cpu() for i, ids in enumerate(rows)]

    def encode_query(self, text: str) -> torch.Tensor:
        """(N, W) token states of one query: SOT, its word pieces, EOT (see the module docstring)."""
        return self.encode_queries([text])[0]

    def _token_states(self, tokens: torch.Tensor) -> torch.Tensor:
        """open_clip's CLIP.encode_text up to ln_final: (B, L) ids -> (B, L, W); causal: padding is inert."""
        model = self.model
        cast = model.transformer.get_cast_dtype()
        x = model.token_embedding(tokens).to(cast)  # (B, L, W)
        x = x + model.positional_embedding.to(cast)  # (B, L, W)
        x = model.transformer(x, attn_mask=model.attn_mask)  # (B, L, W)
        return model.ln_final(x)  # (B, L, W)
