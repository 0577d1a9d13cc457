"""readcli's backbones beside their official code, on the project's parity fixtures (developer script).

Runs the official Moment-DETR (jayleicn/moment_detr, torch only) built from the pickled options of
`parity_model.ckpt`, and, when nncore 0.3.6/0.3.7 is importable, the official UMT (TencentARC/UMT)
built from the `umt_small` model config with the highlight head (the model part of
`configs/tvsum/umt_small_500e_tvsum_bk.py`), each in eval mode on the fixture inputs next to readcli's
model holding the same weights, then once in train mode from the same seed (outputs, and every
parameter's gradient of their sum), and prints one max |difference| table:

    official - stored   the official code here against the fixture's stored outputs (the machine
                        that made them rounded differently; this column measures that)
    readcli - stored    what tests/test_moment_detr.py and tests/test_umt_parity.py assert
    readcli - official  the same weights and inputs through both implementations on this machine

Both implementations use the official module names, so forward hooks compare every module's output;
the first module whose output differs is named under the table (`--layers` prints them all).

    python bench/official_parity.py --official PATH [--official PATH ...] [--data DIR] [--threads N]

PATH is a local checkout of jayleicn/moment_detr or of TencentARC/UMT, or a folder holding such
checkouts (and optionally an nncore 0.3.6 source tree as `nncore/`); nothing is vendored into
readcli. nncore needs its own dependencies (h5py, joblib, jsonlines, pyyaml, tabulate, termcolor)
importable. Exit status: 0 when every readcli - official difference is within --tolerance (default 0:
bit-identical) and every readcli - stored difference within --stored-tolerance (default 1e-5, the
fixtures' bar); 1 when one is beyond; 2 when PATH is missing or holds no official checkout.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import sys
import tempfile
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from readcli.backbones.checkpoint import safe_torch_load
from readcli.backbones.registry import load_backbone
from readcli.threads import apply_threads

REPO = Path(__file__).resolve().parents[1]
UMT_CONFIGS = ("configs/_base_/models/umt_small.py", "configs/_base_/plugins/hd.py")  # the model of *_bk.py
MDETR_OUTPUTS = ("pred_logits", "pred_spans", "saliency_scores")


@dataclass
class Checkouts:
    moment_detr: Path | None = None
    umt: Path | None = None
    nncore: Path | None = None  # a source tree; else nncore must be installed


@dataclass
class Row:
    model: str
    output: str
    official_stored: float | None
    readcli_stored: float | None
    readcli_official: float


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)

    def add(self, model: str, output: str, official_stored: float | None, readcli_stored: float | None,
            official: torch.Tensor, readcli: torch.Tensor) -> None:  # fmt: skip
        self.rows.append(Row(model, output, official_stored, readcli_stored, max_abs(readcli, official)))


def max_abs(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """max |a - b| in float64 (0.0 means bit-identical float32 values)."""
    arrays = [
        x.detach().cpu().double().numpy() if torch.is_tensor(x) else np.asarray(x, np.float64) for x in (a, b)
    ]
    return float(np.abs(arrays[0] - arrays[1]).max())


def find_checkouts(paths: list[Path]) -> Checkouts:
    """The official checkouts in `paths` or one level below them."""
    found = Checkouts()
    for root in paths:
        for candidate in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
            if (candidate / "moment_detr" / "model.py").is_file():
                found.moment_detr = found.moment_detr or candidate
            if (candidate / "models" / "blocks" / "transformer.py").is_file() and all(
                (candidate / c).is_file() for c in UMT_CONFIGS
            ):
                found.umt = found.umt or candidate
            if (candidate / "nncore" / "nn" / "__init__.py").is_file():
                found.nncore = found.nncore or candidate
    return found


def git_commit(checkout: Path) -> str:
    """The checkout's HEAD commit, read from .git without running git ('unknown' if not a git tree)."""
    head = checkout / ".git" / "HEAD"
    if not head.is_file():
        return "unknown"
    text = head.read_text().strip()
    if not text.startswith("ref: "):
        return text[:12]
    ref = checkout / ".git" / text[5:]
    return ref.read_text().strip()[:12] if ref.is_file() else text[5:]


def capture(model: nn.Module) -> tuple[dict[str, list[torch.Tensor]], list[Any]]:
    """Every named module's tensor output(s), cloned (UMT's ReLUs work in place), in call order."""
    store: dict[str, list[torch.Tensor]] = {}

    def hook(name: str) -> Callable[..., None]:
        def record(_module: nn.Module, _inputs: Any, output: Any) -> None:
            outputs = output if isinstance(output, (list, tuple)) else [output]
            for i, t in enumerate(x for x in outputs if torch.is_tensor(x)):
                store.setdefault(name if i == 0 else f"{name}[{i}]", []).append(t.detach().clone())

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n]
    return store, handles


def compare_layers(
    official: dict[str, list[torch.Tensor]], ours: dict[str, list[torch.Tensor]]
) -> Iterator[str]:
    """One line per module both models have, in the official call order; the first nonzero is flagged."""
    flagged = False
    for name, theirs in official.items():
        mine = ours.get(name)
        if mine is None or [a.shape for a in mine] != [b.shape for b in theirs]:
            continue  # a module only one side has, or another layout (e.g. per-head attention maps)
        diff = max(max_abs(a, b) for a, b in zip(mine, theirs, strict=True))
        mark = ""
        if diff > 0 and not flagged:
            flagged, mark = True, "   <- first differing module"
        yield f"  {name:58s} {diff:.3e}{mark}"


def official_moment_detr(checkout: Path, ckpt_path: Path, report: Report) -> nn.Module | None:
    """The official MomentDETR built by its own `build_model` from the checkpoint's pickled options."""
    sys.path.insert(0, str(checkout))
    try:
        build_model = importlib.import_module("moment_detr.model").build_model
    except ImportError as err:  # the official model imports scipy (its matcher)
        report.notes.append(f"moment-detr: skipped, the official code does not import here ({err})")
        return None
    checkpoint = safe_torch_load(ckpt_path)
    opt = copy.copy(checkpoint["opt"])
    opt.device = "cpu"  # the pickled device (GPU 0) only places the criterion, which is not used here
    official, _criterion = build_model(opt)
    official.load_state_dict(checkpoint["model"])
    return official


def run_moment_detr(checkout: Path, data: Path, report: Report) -> None:
    """Official and readcli Moment-DETR on the stored batch: eval outputs, then one training step's."""
    ckpt_path = data / "moment_detr" / "parity_model.ckpt"
    if not ckpt_path.is_file():
        report.notes.append(f"moment-detr: skipped, no fixture at {ckpt_path} (give --data)")
        return
    official = official_moment_detr(checkout, ckpt_path, report)
    if official is None:
        return
    official.eval()
    ours = load_backbone(ckpt_path).eval()
    with np.load(data / "moment_detr" / "parity_outputs.npz") as archive:
        stored = {key: archive[key] for key in archive.files}
    inputs = {k: torch.from_numpy(stored[k]) for k in ("src_txt", "src_txt_mask", "src_vid", "src_vid_mask")}
    theirs_store, their_hooks = capture(official)
    ours_store, our_hooks = capture(ours)
    with torch.no_grad():
        theirs = official(**clone(inputs))
        mine = ours(**inputs)
    for handle in their_hooks + our_hooks:
        handle.remove()
    for key in MDETR_OUTPUTS:
        ref = stored[key]
        report.add(
            "moment-detr", key, max_abs(theirs[key], ref), max_abs(mine[key], ref), theirs[key], mine[key]
        )
    for i, (a, b) in enumerate(zip(theirs["aux_outputs"], mine["aux_outputs"], strict=True)):
        for key in ("pred_logits", "pred_spans"):
            report.add("moment-detr", f"aux_outputs[{i}].{key}", None, None, a[key], b[key])
    train_step(
        "moment-detr",
        (official, ours),
        (lambda: pick(official(**clone(inputs)), MDETR_OUTPUTS), lambda: pick(ours(**inputs), MDETR_OUTPUTS)),
        report,
    )
    report.notes.append(f"moment-detr: official {checkout} at {git_commit(checkout)}")
    report.layers.append("moment-detr, per module (readcli - official):")
    report.layers += compare_layers(theirs_store, ours_store)


def train_step(
    label: str,
    models: tuple[nn.Module, nn.Module],
    forwards: tuple[Callable[[], dict[str, torch.Tensor]], Callable[[], dict[str, torch.Tensor]]],
    report: Report,
) -> None:
    """(official, readcli) in train mode from seed 0 (the same dropout draws if both use the random
    numbers alike): each forward's outputs, then the gradients of their sum for every parameter."""
    outputs = []
    for model, forward in zip(models, forwards, strict=True):
        model.train()
        for param in model.parameters():
            param.requires_grad_(True)
            param.grad = None
        torch.manual_seed(0)
        out = forward()
        torch.stack([value.sum() for value in out.values()]).sum().backward()
        outputs.append(out)
    for key in outputs[0]:
        report.add(label, f"train seed 0: {key}", None, None, outputs[0][key], outputs[1][key])
    theirs = dict(models[0].named_parameters())
    differences = []
    for name, param in models[1].named_parameters():
        their_grad = theirs[name].grad
        if param.grad is not None and their_grad is not None:
            differences.append((max_abs(their_grad, param.grad), name))
    worst, where = max(differences)
    report.rows.append(Row(label, "train seed 0: gradients", None, None, worst))
    if worst > 0:
        report.notes.append(f"{label}: the largest gradient difference is at {where}")
    for model in models:
        model.eval()


def import_nncore(checkouts: Checkouts) -> Any:
    if checkouts.nncore is not None:
        sys.path.insert(0, str(checkouts.nncore))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nncore warns that opencv is missing; UMT does not need it
        return importlib.import_module("nncore")


def run_umt(checkouts: Checkouts, data: Path, report: Report) -> None:
    """The official UMT (nncore build) with the fixture's weights, beside readcli's, on both fixture cases."""
    assert checkouts.umt is not None
    fixture_path = data / "umt" / "fixture_tvsum.pt"
    if not fixture_path.is_file():
        report.notes.append(f"umt: skipped, no fixture at {fixture_path} (give --data)")
        return
    try:
        nncore = import_nncore(checkouts)
    except ImportError as err:
        report.notes.append(f"umt: skipped, nncore is not importable ({err}); give an nncore 0.3.6 tree")
        return
    version = nncore.__version__
    if version not in ("0.3.6", "0.3.7"):
        report.notes.append(f"umt: skipped, nncore {version} cannot build UMT (0.3.6 and 0.3.7 can)")
        return
    sys.path.insert(0, str(checkouts.umt))  # first: readcli's top-level models/ folder is not this package
    importlib.import_module("models")  # registers the UMT blocks with nncore's MODELS
    fixture = torch.load(fixture_path, map_location="cpu", weights_only=True)
    with tempfile.TemporaryDirectory() as tmp:
        config_file = Path(tmp) / "umt_model.py"
        config_file.write_text(f"_base_ = {[str(checkouts.umt / c) for c in UMT_CONFIGS]!r}\n")
        official = nncore.nn.build_model(nncore.Config.from_file(str(config_file)).model)
        weights = Path(tmp) / "umt.pth"  # an official file's layout, loaded the way users load one
        torch.save({"meta": {}, "state_dict": OrderedDict(fixture["state_dict"])}, weights)
        ours = load_backbone(str(weights)).eval()
    official.load_state_dict(fixture["state_dict"])
    official.eval()
    for case in fixture["cases"]:
        theirs_store, their_hooks = capture(official)
        ours_store, our_hooks = capture(ours)
        with torch.no_grad():
            their_logits, saliency = official_umt_logits(official, case["official_inputs"])  # (1, N) each
            logits = ours(**case["inputs"])["saliency_scores"]  # (1, N)
        for handle in their_hooks + our_hooks:
            handle.remove()
        mine = logits.sigmoid() * case["inputs"]["src_vid_mask"]
        name = f"umt {case['name']}"
        ref_logits, ref_saliency = case["official_logits"], case["official_saliency"]
        report.add(
            name,
            "logits",
            max_abs(their_logits, ref_logits),
            max_abs(logits, ref_logits),
            their_logits,
            logits,
        )
        report.add(
            name, "sigmoid*mask", max_abs(saliency, ref_saliency), max_abs(mine, ref_saliency), saliency, mine
        )
        report.layers.append(f"{name}, per module (readcli - official):")
        report.layers += compare_layers(theirs_store, ours_store)
    case = fixture["cases"][0]
    train_step(
        f"umt {case['name']}",
        (official, ours),
        (
            lambda: {"logits": official_umt_logits(official, case["official_inputs"])[0]},
            lambda: {"logits": ours(**case["inputs"])["saliency_scores"]},
        ),
        report,
    )
    report.notes.append(f"umt: official {checkouts.umt} at {git_commit(checkouts.umt)}, nncore {version}")


def official_umt_logits(official: nn.Module, inputs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """The official UMT's saliency logits (read by a hook: its head returns only sigmoid * mask) and that."""
    seen: list[torch.Tensor] = []
    head: Any = official.get_submodule("pred_head.0.saliency_pred")
    hook = head.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        output = official(clone(inputs), "test")  # "test": no loss, the official inference call
    finally:
        hook.remove()
    return seen[-1].squeeze(-1), output["_out"]["saliency"]  # (1, N) each


def clone(inputs: dict[str, Any]) -> dict[str, Any]:
    """A fresh copy of a batch: the official QueryGenerator writes into its input in place."""
    return {k: v.clone() if torch.is_tensor(v) else v for k, v in inputs.items()}


def pick(outputs: dict[str, Any], keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
    return {key: outputs[key] for key in keys}


def print_report(report: Report, *, tolerance: float, stored_tolerance: float, layers: bool) -> bool:
    """The table, the notes and the first differing modules (all modules with `layers`); True if within."""
    columns = ("official-stored", "readcli-stored", "readcli-official")
    print(f"{'model':14s} {'output':30s} {columns[0]:>15s} {columns[1]:>15s} {columns[2]:>16s}")
    within = True
    for row in report.rows:
        cells = [f"{v:.3e}" if v is not None else "-" for v in (row.official_stored, row.readcli_stored)]
        bad = row.readcli_official > tolerance or (row.readcli_stored or 0.0) > stored_tolerance
        within &= not bad
        line = (
            f"{row.model:14s} {row.output:30s} {cells[0]:>15s} {cells[1]:>15s} {row.readcli_official:16.3e}"
        )
        print(line + ("   BEYOND TOLERANCE" if bad else ""))
    for note in report.notes:
        print(note)
    flagged = [line for line in report.layers if "first differing" in line]
    if layers:
        print("\n".join(report.layers))
    elif flagged:
        print("first differing modules:\n" + "\n".join(flagged))
    else:
        print("no module output differs between readcli and the official code")
    return within


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    checkout = "a local checkout of jayleicn/moment_detr or TencentARC/UMT, or a folder of them (repeatable)"
    parser.add_argument(
        "--official", type=Path, action="append", required=True, metavar="PATH", help=checkout
    )
    fixtures = "the folder holding the moment_detr/ and umt/ fixtures (default: ../shared/data)"
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help=fixtures)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (readcli's precedence)")
    parser.add_argument("--tolerance", type=float, default=0.0, help="max readcli - official (default 0)")
    parser.add_argument("--stored-tolerance", type=float, default=1e-5, help="max readcli - stored (1e-5)")
    parser.add_argument("--layers", action="store_true", help="print every module's difference")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    paths = ", ".join(map(str, args.official))
    missing = [str(p) for p in args.official if not p.is_dir()]
    if missing:
        print(f"error: --official PATH is missing (no such folder): {', '.join(missing)}", file=sys.stderr)
        return 2
    checkouts = find_checkouts(args.official)
    if checkouts.moment_detr is None and checkouts.umt is None:
        looked = "moment_detr/model.py (jayleicn/moment_detr), models/blocks/transformer.py (TencentARC/UMT)"
        print(
            f"error: no official checkout in --official {paths} or its subfolders ({looked})", file=sys.stderr
        )
        return 2
    threads = apply_threads(args.threads)
    kernels = torch.backends.cpu.get_cpu_capability()
    print(f"torch {torch.__version__}, CPU, {threads} thread(s), {kernels} kernels")
    report = Report()
    if checkouts.moment_detr is not None:
        run_moment_detr(checkouts.moment_detr, args.data, report)
    else:
        report.notes.append("moment-detr: skipped, no jayleicn/moment_detr checkout given")
    if checkouts.umt is not None:
        run_umt(checkouts, args.data, report)
    else:
        report.notes.append("umt: skipped, no TencentARC/UMT checkout given")
    within = print_report(
        report, tolerance=args.tolerance, stored_tolerance=args.stored_tolerance, layers=args.layers
    )
    return 0 if within else 1


if __name__ == "__main__":
    raise SystemExit(main())
