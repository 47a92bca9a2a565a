"""Torchvision's whole classification list, the slower check: groups found, half of every family zeroed,
removed exactly (the models under 30 M parameters, plus vgg11_bn, vit_b_32 and swin_t, as Torch-Pruning's
own torchvision test list picks them; built without weights, 64x64 inputs, 96x96 for inception_v3,
four patches a side for a ViT).

Usage: python benchmarks/zoo_torchvision.py [--models resnet50 ...]
Results go to benchmarks/results/zoo_torchvision.jsonl (one line per model).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "zoo_torchvision.jsonl"
EXTRA = ("vgg11_bn", "vit_b_32", "swin_t")


def _models() -> list[str]:
    sys.path.insert(0, str(ROOT))
    import torch

    from tests.zoo import zoo

    tv = zoo("torchvision")
    names = []
    for name in tv.models.list_models(module=tv.models):
        try:
            with torch.device("meta"):  # counted without memory or init time
                model = tv.models.get_model(name, num_classes=4, **_kwargs(name))
        except NotImplementedError:  # a constructor that computes with tensors (RegNet)
            model = tv.models.get_model(name, num_classes=4, **_kwargs(name))
        if sum(p.numel() for p in model.parameters()) < 30e6 or name in EXTRA:
            names.append(name)
    return names


def _size(name: str) -> int:
    if name.startswith("vit_"):
        return 4 * int(name.rsplit("_", 1)[1])  # four patches a side
    return 96 if name == "inception_v3" else 64


def _kwargs(name: str) -> dict[str, Any]:
    if name in ("googlenet", "inception_v3"):
        return {"aux_logits": False, "init_weights": False}
    if name.startswith("vit_"):
        return {"image_size": _size(name)}
    return {}


def _measure(name: str) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    import torch
    from zoo_table import peak_mib

    from lightning_compress.surgery import compress_zero_groups, count_params_and_macs, find_groups
    from tests.test_zoo import _randomize_zeros, _zero
    from tests.zoo import zoo

    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.randn(2, 3, _size(name), _size(name))
    model = _randomize_zeros(zoo("torchvision").models.get_model(name, num_classes=4, **_kwargs(name)).eval())
    params = count_params_and_macs(model, x[:1])[0]
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        families = find_groups(model, x[:1])
    row: dict[str, Any] = {
        "model": name,
        "params": params,
        "groups_seconds": round(time.perf_counter() - start, 2),
    }
    row["groups_peak_mib"] = peak_mib()
    row["families"] = len(families)
    row["skipped"] = sorted({str(w.message) for w in said if issubclass(w.category, UserWarning)})
    for f in families:
        _zero(model, f, torch.arange(0, f.num_groups, 2))
    with torch.no_grad():
        before = model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compress_zero_groups(model, x[:1])
    with torch.no_grad():
        after = model(x)
    row["removal_params"] = count_params_and_macs(model, x[:1])[0]
    row["removal_relative_difference"] = float((after - before).abs().max()) / max(
        float(before.abs().max()), 1e-6
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        try:
            row = _measure(args.child)
        except Exception as err:  # the table says a model crashed, and how
            row = {"model": args.child, "crash": f"{type(err).__name__}: {str(err)[:300]}"}
        print("ROW " + json.dumps(row), flush=True)
        return
    rows = []
    for name in args.models or _models():
        try:
            proc = subprocess.run(
                [sys.executable, __file__, "--child", name], capture_output=True, text=True, timeout=600
            )
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("ROW ")), None)
            row = json.loads(line[4:]) if line else {"model": name, "crash": proc.stderr[-300:]}
        except subprocess.TimeoutExpired:
            row = {"model": name, "crash": "more than 600 s"}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "skipped"}), flush=True)
        OUT.write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
