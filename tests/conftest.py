"""Shared test set-up: offline hubs, deterministic threads, and the path to ../shared/data."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub or open_clip: fail at once instead of retrying the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

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
