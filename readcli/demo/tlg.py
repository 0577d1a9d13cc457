"""Temporal language grounding as a `DemoTask` (readcli/demo/contract.py): `readcli demo --task tlg`.

A run adapts the source-pretrained backbone with one method on one world's low-resource subset and
scores it per query. Training depends only on (world, method, lr, seed), never on the split scored,
so the run that scored "dev" keeps the trained parameters in the scratch directory and the test
scoring of the chosen learning rate reuses them (or retrains identically when they are missing).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from readcli.adapters.accounting import count_parameters
from readcli.adapters.inject import inject
from readcli.demo.contract import RunScores, SourceReport, Split
from readcli.demo.fit import METRICS, fit
from readcli.demo.methods import DEMO_METHODS, DemoMethod, demo_method
from readcli.demo.tlg_profile import TLG_PROFILES, TlgProfile
from readcli.demo.tlg_source import Pretrained, ensure_pretrained, load_pretrained, make_task, score
from readcli.demo.world import WORLDS
from readcli.demo.world_files import ensure_worlds
from readcli.errors import InvalidValueError, choices_text
from readcli.seeding import seed_everything


class GroundingDemo:
    """The grounding demo: worlds control / temporal / partial, Moment-DETR (and UMT) backbones."""

    name = "tlg"
    metrics = METRICS
    worlds = WORLDS

    def __init__(self, profile: str | TlgProfile, scratch: Path, methods: tuple[str, ...] = ()) -> None:
        self.profile = TLG_PROFILES[profile] if isinstance(profile, str) else profile
        self.scratch = scratch
        keys = methods or tuple(k for k, m in DEMO_METHODS.items() if m.default)
        self._methods = tuple(demo_method(k).key for k in keys)
        self._worlds_dir: Path | None = None
        self._backbones: dict[str, Pretrained] = {}

    def methods(self) -> tuple[str, ...]:
        return self._methods

    def lr_grid(self, method: str) -> tuple[float, ...]:
        return self.profile.grid(demo_method(method))

    def prepare(self, cache: Path) -> tuple[SourceReport, ...]:
        """Write (or reuse) the worlds; pretrain (or reuse) each backbone the methods need."""
        root = cache / "tlg"
        self._worlds_dir, _ = ensure_worlds(
            self.profile.world, root / f"worlds-{self.profile.world.digest()}"
        )
        needed = dict.fromkeys(demo_method(k).backbone for k in self._methods)
        for architecture in needed:
            self._backbones[architecture] = ensure_pretrained(
                self.profile, self._worlds_dir, root, architecture
            )
        return tuple(p.report for p in self._backbones.values())

    def run(self, world: str, method: str, lr: float, seed: int, split: Split) -> RunScores:
        if world not in WORLDS:
            raise InvalidValueError(f"unknown tlg world {world!r}: choose one of {choices_text(WORLDS)}")
        if split not in ("dev", "test"):
            raise InvalidValueError(f"unknown split {split!r}: choose dev or test")
        if self._worlds_dir is None:
            raise InvalidValueError("GroundingDemo.run before prepare(): call prepare(cache) first")
        started = time.perf_counter()
        row = demo_method(method)
        domain = self._worlds_dir / world
        task = make_task(domain, split, row, samples=self.profile.train_samples, seed=seed)
        model = self._fresh(row, seed)
        state = self.scratch / f"tlg-{world}-{method}-{lr:g}-{seed}.safetensors"
        trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
        if split == "test" and state.is_file():
            loaded = load_file(str(state))
            if set(loaded) != set(trainable):
                raise InvalidValueError(f"{state}: saved parameters do not match {method!r}'s")
            with torch.no_grad():
                for name, tensor in loaded.items():
                    trainable[name].copy_(tensor)
        else:
            fit(model, task, replace(self.profile.adapt, lr=lr, seed=seed))
            self.scratch.mkdir(parents=True, exist_ok=True)
            partial = state.with_suffix(f".{split}.part")
            save_file({n: p.detach().contiguous() for n, p in trainable.items()}, str(partial))
            partial.replace(state)  # atomic: a test run never loads half a file
        with torch.no_grad():
            per_example = score(task, model)
        count = count_parameters(model)
        return RunScores(per_example, count.trainable, count.total, time.perf_counter() - started)

    def source_only(self, world: str, split: Split) -> RunScores:
        """The pretrained Moment-DETR on `world`'s split without adaptation: what the shift costs."""
        if self._worlds_dir is None:
            raise InvalidValueError("GroundingDemo.source_only before prepare(): call prepare(cache) first")
        started = time.perf_counter()
        task = make_task(self._worlds_dir / world, split, None, samples=self.profile.train_samples, seed=0)
        model = load_pretrained(self._backbones["moment_detr"].directory)
        with torch.no_grad():
            per_example = score(task, model)
        count = count_parameters(model)
        return RunScores(per_example, 0, count.total, time.perf_counter() - started)

    def _fresh(self, row: DemoMethod, seed: int) -> torch.nn.Module:
        """The pretrained backbone with `row`'s method injected; the new parameters drawn from `seed`."""
        pretrained = self._backbones.get(row.backbone)
        if pretrained is None:
            raise InvalidValueError(f"backbone {row.backbone!r} was not prepared for method {row.key!r}")
        model = load_pretrained(pretrained.directory)
        seed_everything(seed)  # the adapter initialisation is part of the run's seed
        inject(model, row.settings)
        return model
