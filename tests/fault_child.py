"""A child process for tests/test_faults.py: runs one readcli action and stops at a chosen point.

`python tests/fault_child.py READY THREADS MODE ARGS...`: at the point MODE names, the child creates
the file READY and sleeps, so the test can SIGKILL it exactly there. Nothing is mocked except the
pause: the child writes with readcli's own code up to that moment.

Modes:
- `step N -- CLI ARGS`: `readcli CLI ARGS`, paused right after the N-th optimiser step.
- `write PATTERN -- CLI ARGS`: `readcli CLI ARGS`, paused halfway through writing the first temporary
  file whose path contains PATTERN (half its bytes on disk, not renamed).
- `bundle POINT DIR VALUE`: save a bundle of the tiny host model (adapter tensors all VALUE) into DIR,
  paused at POINT: `pending` (the new tensors half written), `config` (the config half written),
  `commit` (after the config commits, before the tensors take their final name).
- `extract CLIP_CONFIG -- CLI ARGS`: register the tiny CLIP config, then `readcli CLI ARGS` (no pause).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any


def pause(ready: str) -> None:
    Path(ready).touch()
    time.sleep(600)


def pause_after_step(ready: str, n: int) -> None:
    import torch

    original = torch.optim.AdamW.step
    count = [0]

    def step(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        count[0] += 1
        if count[0] == n:
            pause(ready)
        return result

    torch.optim.AdamW.step = step  # type: ignore[method-assign]


def pause_mid_write(ready: str, pattern: str) -> None:
    import readcli.fileio as fileio

    original = fileio._open_temp

    class HalfThenPause:
        def __init__(self, handle: Any) -> None:
            self.handle = handle

        def write(self, data: Any) -> int:
            half = bytes(data)[: max(1, len(data) // 2)]
            self.handle.write(half)
            self.handle.flush()
            os.fsync(self.handle.fileno())
            pause(ready)
            return len(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.handle, name)

        def __enter__(self) -> Any:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

    def open_temp(fd: int) -> Any:
        handle = original(fd)
        if pattern in os.readlink(f"/proc/self/fd/{fd}"):
            return HalfThenPause(handle)
        return handle

    fileio._open_temp = open_temp  # type: ignore[assignment]


def save_bundle_and_pause(ready: str, point: str, directory: str, value: float) -> None:
    import torch
    from test_adapters_hosts import tiny_grounder

    import readcli.adapters.bundle as bundle
    from readcli.adapters.inject import adapter_parameters, inject
    from readcli.adapters.settings import method_settings

    if point == "commit":
        original = bundle.atomic_replace

        def replace_after_pause(source: Any, target: Any) -> None:
            pause(ready)
            original(source, target)

        bundle.atomic_replace = replace_after_pause  # type: ignore[assignment]
    else:
        pause_mid_write(ready, bundle.PENDING_FILE if point == "pending" else bundle.CONFIG_FILE)
    model = tiny_grounder()
    inject(model, method_settings("read", bottleneck=4))
    with torch.no_grad():
        for parameter in adapter_parameters(model).values():
            parameter.fill_(value)
    bundle.save_bundle(model, directory, backbone_name="tiny-host", task="test")


def main(argv: list[str]) -> None:
    ready, threads, mode, *rest = argv
    import torch

    torch.set_num_threads(int(threads))
    if mode == "bundle":
        point, directory, value = rest
        save_bundle_and_pause(ready, point, directory, float(value))
        return
    setting, separator, *cli_args = rest
    assert separator == "--", argv
    if mode == "step":
        pause_after_step(ready, int(setting))
    elif mode == "write":
        pause_mid_write(ready, setting)
    elif mode == "extract":
        import open_clip

        open_clip.add_model_config(setting)
    from readcli.cli import app

    app(cli_args, prog_name="readcli")


if __name__ == "__main__":
    main(sys.argv[1:])
