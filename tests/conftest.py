"""Shared test set-up: offline hubs, deterministic threads, and the path to ../shared/data."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub or open_clip: fail at once instead of retrying the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# Hypothesis: "ci" (the default) runs a small fixed, derandomised example budget so the suite stays fast
# and deterministic; HYPOTHESIS_PROFILE=long is a maintainer's long search (HYPOTHESIS_MAX_EXAMPLES
# examples per test, default 5000). docs/reliability.md.
from hypothesis import settings as hypothesis_settings  # noqa: E402

hypothesis_settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True, print_blob=True)
hypothesis_settings.register_profile(
    "long",
    max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "5000")),
    deadline=None,
    print_blob=True,
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip the test with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def _deterministic_torch() -> None:
    try:
        import torch
    except ImportError:  # the CLI-only tests need no torch
        return
    torch.set_num_threads(min(2, os.cpu_count() or 1))


TINY_CLIP = "readcli-test-tiny-clip"


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A CLIP of open_clip's own architecture with the widths Moment-DETR takes (512 image embedding,
    512 text width) but 64-pixel images and few layers: the long video extracts in seconds. Random
    weights in a local file; the config is registered with open_clip for this test session."""
    import open_clip
    import torch
    from open_clip import factory
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("tiny-clip")
    config = {
        "embed_dim": 512,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 1},
    }
    config_file = folder / f"{TINY_CLIP}.json"
    config_file.write_text(json.dumps(config))
    open_clip.add_model_config(config_file)
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_CLIP, pretrained=None)
    weights = folder / "tiny-clip.safetensors"
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, str(weights))
    yield weights
    factory._MODEL_CONFIGS.pop(TINY_CLIP, None)
    factory._MODEL_CONFIG_PATHS.remove(config_file)
