"""The model zoo as a table: each third-party model x each feature -> what it did, or what it skipped and why.

Every model is built from its library's constructor (no weights downloaded; ``make zoo`` installs the
libraries), in a process of its own, one torch thread. For each:

  groups     ``find_groups`` on one example: seconds, the process's peak memory at its end, the families
             found, and every family left out (its warning: the module and the reason)
  removal    half of every family's groups zeroed, then ``compress_zero_groups``: parameters before and
             after, and the largest output difference relative to the output's scale
  reload     the state dict loaded into a fresh model of the same constructor (history replayed): equal outputs
  export     ``torch.export`` of the compressed model (Hugging Face models: of their logits): equal outputs
  low rank   ``compress_low_rank(method="svd", param_ratio=0.5)`` on a fresh model: parameters after
  DALR       ``compress_low_rank(method="dalr", param_ratio=0.5)`` on 4 random batches: parameters after

Usage: python benchmarks/zoo_table.py [--models hf.bert timm.vit_tiny ...]
Results go to benchmarks/results/zoo_table.jsonl (one line per model, replaced on each run of it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "zoo_table.jsonl"
MODELS = [
    "torchvision.resnet18",
    "torchvision.mobilenet_v3_small",
    "torchvision.efficientnet_b0",
    "torchvision.convnext_tiny",
    "torchvision.vit_b_32",
    "torchvision.swin_t",
    "timm.vit_tiny",
    "timm.convnext_atto",
    "timm.swin_tiny",
    "hf.bert",
    "hf.gpt2",
    "hf.llama",
]


def peak_mib() -> int:
    """This process's peak resident memory (``VmHWM``: unlike ``ru_maxrss`` it does not keep the parent's
    peak across ``fork`` and ``exec``)."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) // 1024


def _measure(name: str) -> dict[str, Any]:
    """Every feature on one model (run in its own process)."""
    sys.path.insert(0, str(ROOT))
    import torch

    from lightning_compress.surgery import (
        compress_low_rank,
        compress_zero_groups,
        count_params_and_macs,
        enable_history_restore,
        find_groups,
    )
    from tests.test_zoo import BUILDERS, SLOW, _input, _Logits, _logits, _randomize_zeros, _zero

    torch.set_num_threads(1)
    torch.manual_seed(0)
    build: Callable[[], torch.nn.Module] = {**BUILDERS, **SLOW}[name]
    x = _input(name)
    row: dict[str, Any] = {"model": name}
    model = _randomize_zeros(build().eval())
    params, macs = count_params_and_macs(model, x[:1])
    row.update(params=params, macs=macs)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        families = find_groups(model, x[:1])
    row["groups_seconds"] = round(time.perf_counter() - start, 2)
    row["groups_peak_mib"] = peak_mib()
    row["families"] = len(families)
    row["groups"] = sum(f.num_groups for f in families)
    row["skipped"] = sorted({str(w.message) for w in said if issubclass(w.category, UserWarning)})
    for f in families:
        _zero(model, f, torch.arange(0, f.num_groups, 2))
    with torch.no_grad():
        before = _logits(model(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compress_zero_groups(model, x[:1])
    with torch.no_grad():
        after = _logits(model(x))
    scale = max(float(before.abs().max()), 1e-6)
    row["removal_params"] = count_params_and_macs(model, x[:1])[0]
    row["removal_relative_difference"] = float((after - before).abs().max()) / scale
    fresh = build().eval()
    enable_history_restore(fresh, x[:1])
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        row["reload_relative_difference"] = float((_logits(fresh(x)) - after).abs().max()) / scale

    try:
        program = torch.export.export(_Logits(model), (x,)).module()
        with torch.no_grad():
            row["export_relative_difference"] = float((program(x) - after).abs().max()) / scale
    except Exception as err:  # reported in the table, as any failure
        row["export_error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
    for method in ("svd", "dalr"):
        low = build().eval()
        batches = [_input(name) for _ in range(4)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = compress_low_rank(low, batches, method=method, param_ratio=0.5)
        row[f"{method}_layers_split"] = sum(r.rank is not None for r in results)
        row[f"{method}_params"] = count_params_and_macs(low, x[:1])[0]
    return row


def _child(name: str) -> None:
    try:
        row = _measure(name)
    except Exception as err:  # the table says a model crashed, and where
        row = {
            "model": name,
            "crash": f"{type(err).__name__}: {err}",
            "trace": traceback.format_exc()[-2000:],
        }
    row["measured"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print("ROW " + json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    rows = {r["model"]: r for r in map(json.loads, OUT.read_text().splitlines())} if OUT.is_file() else {}
    for name in args.models:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name], capture_output=True, text=True, timeout=900
        )
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("ROW ")), None)
        row = json.loads(line[4:]) if line else {"model": name, "crash": proc.stderr[-2000:]}
        rows[name] = row
        print(json.dumps({k: v for k, v in row.items() if k not in ("skipped", "trace")}), flush=True)
        OUT.write_text("".join(json.dumps(rows[m]) + "\n" for m in MODELS if m in rows))


if __name__ == "__main__":
    main()
