"""The Hugging Face Hub through its own client: its cache, its offline switch, its downloads.

The cache folder and `HF_HUB_OFFLINE` are read when a function runs, not when huggingface_hub is
imported (its `constants` freeze them at import), so a changed environment (tests, a long-lived
caller) is honoured. Files land in the hub's cache layout (`models--org--name/snapshots/<rev>/...`),
where `from_pretrained(hub_id)` finds them offline; huggingface_hub writes each file atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

from readcli.errors import OfflineError
from readcli.weights.http import DownloadError

TRUTHY = ("1", "true", "yes", "on")


def hub_cache_dir() -> Path:
    """$HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub (the client's own rule)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("HF_HOME")
    if not home:
        home = os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def offline_reason() -> str | None:
    """ "HF_HUB_OFFLINE=1" when the hub client's offline switch is on (readcli downloads honour it too)."""
    value = os.environ.get("HF_HUB_OFFLINE", "").strip()
    return f"HF_HUB_OFFLINE={value}" if value.lower() in TRUTHY else None


def split_revision(spec: str) -> tuple[str, str | None]:
    """ "org/name@rev" -> ("org/name", "rev"); no "@": (spec, None)."""
    repo_id, at, revision = spec.partition("@")
    return repo_id, (revision or None) if at else None


def cached_file(repo_id: str, file_name: str, revision: str | None) -> Path | None:
    """The cached copy of one repository file, or None (no network)."""
    # lazy: huggingface_hub freezes its cache and offline settings at import: load it when a function runs
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, file_name, cache_dir=hub_cache_dir(), revision=revision)
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def snapshot(
    repo_id: str, revision: str | None, *, patterns: tuple[str, ...] | None = None, what: str
) -> Path:
    """The local folder of a repository snapshot: from the cache, downloading what is missing when online.

    `what` names the caller's argument in messages, e.g. "--adapter org/bundle".
    """
    # lazy: huggingface_hub freezes its cache and offline settings at import: load it when a function runs
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = offline_reason()
    try:
        folder = snapshot_download(
            repo_id, revision=revision, cache_dir=hub_cache_dir(), local_files_only=offline is not None,
            allow_patterns=list(patterns) if patterns else None,
        )  # fmt: skip
    except HFValidationError as err:
        raise DownloadError(f"{what}: not a valid hub repository id ({_short(err)})") from None
    except LocalEntryNotFoundError:
        rev = f" at revision {revision}" if revision else ""
        why = f"{offline} is set" if offline else "the hub cannot be reached"
        raise OfflineError(
            f"{what}: {repo_id}{rev} is not in the Hugging Face cache ({hub_cache_dir()}) and {why}; "
            "fetch it once with a network (unset HF_HUB_OFFLINE)"
        ) from None
    except (RepositoryNotFoundError, RevisionNotFoundError) as err:
        raise DownloadError(f"{what}: {_short(err)}") from None
    except Exception as err:  # noqa: BLE001 (the hub client raises many HTTP error types)
        raise OfflineError(
            f"{what}: cannot fetch {repo_id} from the Hugging Face Hub ({_short(err)})"
        ) from None
    return Path(str(folder))


def hub_mismatches(repo_id: str, revision: str | None) -> tuple[int, list[str]]:
    """(files checked, paths that differ) of a cached snapshot against the digests the hub publishes.

    huggingface_hub's `verify_repo_checksums` (sha256 for LFS files, git blob sha1 for the others); it
    reads the repository's file list, so it needs the network: call it right after a download. Files
    the snapshot did not fetch (other formats of the same weights) are not counted.
    """
    # lazy: huggingface_hub freezes its cache and offline settings at import: load it when a function runs
    from huggingface_hub import HfApi

    try:
        result = HfApi().verify_repo_checksums(repo_id, revision=revision, cache_dir=hub_cache_dir())
    except Exception as err:  # noqa: BLE001 (network and hub errors of many types)
        raise DownloadError(
            f"{repo_id}: fetched into the Hugging Face cache, but its files could not be checked against the "
            f"hub's digests ({_short(err)})"
        ) from None
    return int(result.checked_count), sorted(str(m["path"]) for m in result.mismatches)


def _short(err: BaseException) -> str:
    return " ".join(str(err).split())[:200] or type(err).__name__
