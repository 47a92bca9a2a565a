"""Every method on one Pareto front: per-method budgets, measured latency, the cross-method report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState, create_trial
from torch import nn

from lightning_compress.config import ConfigError
from lightning_compress.surgery import architecture_key, measure_latency
from lightning_compress.sweep import load_sweep
from lightning_compress.sweep.compare import compare_methods, format_methods, front_of, spearman
from lightning_compress.sweep.storage import open_storage
from tests.sweep_helpers import ROOT
from tests.wandb_files import run_summary

PY = sys.executable
SWEEPS = ROOT / "lightning_compress" / "sweeps"

# every method of sweeps/lenet300_methods.yaml, its schedule fitted into 2 short epochs
METHODS: dict[str, dict] = {
    "group_lasso": {"group_sparsity": {"strength": 0.003}, "pruning": {"every_n_epochs": 1}},
    "sparse_group_lasso": {
        "group_sparsity": {"strength": 0.003, "l1_ratio": 0.5},
        "pruning": {"every_n_epochs": 1},
    },
    "low_rank": {"low_rank": {"strength": 0.01, "every_n_steps": 5}},
    "low_rank_then_group_lasso": {
        "low_rank": {
            "strength": 0.01,
            "every_n_steps": 5,
            "split_epochs": [0],
            "stop_epoch": 1,
            "split_at_fit_end": False,
            "param_ratio": 0.3,
        },
        "group_sparsity": {"strength": 0.003, "warmup_epochs": 1},
        "pruning": {"every_n_epochs": 1},
    },
    "group_lasso_target": {"group_sparsity": {"target_params": 0.3}, "pruning": {"every_n_epochs": 1}},
    "low_rank_target": {"low_rank": {"target_params": 0.3, "every_n_steps": 5}},
    "dalr": {"low_rank_compression": {"method": "dalr", "params": 0.2, "at_epoch": 0, "data": "val"}},
    "flexible_rank": {"flexible_rank": {"every_n_steps": 3, "svd_every": 12}},
}


def _sweep(tmp_path: Path, data: Path, **extra: object) -> Path:
    methods: dict[str, dict] = {m: {"compression": c, "n_trials": 1} for m, c in METHODS.items()}
    methods["flexible_rank"]["sizes"] = [0.5, 0.3]
    sweep = {
        "name": "every",
        "base": str(ROOT / "configs" / "lenet300_fmnist.yaml"),
        "overrides": [
            f"data.data_dir={data}", "data.val_size=1000", "trainer.max_epochs=2",
            "trainer.limit_train_batches=40", "trainer.limit_test_batches=10", "model.kwargs.hidden=[64,32]",
        ],
        "methods": methods,
        "objectives": {"size": "params", "accuracy_floor": 0.3},
        "latency": {"batch_size": 64, "runs": 10, "warmup": 2},
        "output_dir": str(tmp_path / "out"),
        "early_stop": {"min_val_acc": None},
        "wandb": {"mode": "offline", "tags": ["test"]},
        **extra,
    }  # fmt: skip
    path = tmp_path / "every.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def test_every_method_competes_on_real_data_and_the_report_says_who_owns_the_front(
    tmp_path: Path, real_fmnist: Path
) -> None:
    path = _sweep(tmp_path, real_fmnist)
    proc = subprocess.run(
        [PY, "-m", "lightning_compress.cli.main", "sweep", str(path), "--workers", "2"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "out" / "every"
    study = optuna.load_study(
        study_name="every", storage=open_storage(str(out / "journal.log"), create=False)
    )
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    trained = [t for t in done if t.user_attrs.get("size_of") is None]
    # each method's budget: exactly one trained trial each, none failed, plus the flexible model's sizes
    assert sorted(t.user_attrs["method"] for t in trained) == sorted(METHODS)
    assert not study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    assert len([t for t in done if t.user_attrs.get("size_of") is not None]) >= 1
    for t in done:  # params, MACs and measured latency for every trial, whatever the objective
        a = t.user_attrs
        assert a["params"] > 0 and a["macs"] > 0 and a["latency"] > 0 and a["dense_latency"] > 0
        assert a["latency_q25"] <= a["latency"] <= a["latency_q75"] and a["latency_batch"] == 64
    summary = json.loads((out / "summary.json").read_text())
    methods = summary["methods"]
    assert set(methods["hypervolume"]) == {*METHODS, "union"}
    assert methods["hypervolume"]["union"] >= max(
        v for k, v in methods["hypervolume"].items() if k != "union"
    )
    owners = {s["method"] for s in methods["stretches"]}
    assert owners and owners <= set(METHODS)
    assert "hypervolume by method" in proc.stdout and "who owns the union front" in proc.stdout
    assert "who owns the union front" in (out / "pareto.html").read_text()  # the same in the offline page
    for method in METHODS:
        assert method in proc.stdout
    # the W&B summary run holds each method's hypervolume, the owners' table and the Pareto models
    runs = [run_summary(f) for f in (out / "wandb").glob("offline-run-*")]
    pareto = next(r for r in runs if r["job_type"] == "summary")
    assert {f"hypervolume/{m}" for m in (*METHODS, "union")} <= pareto["summary_keys"], pareto["summary_keys"]
    assert any(k.startswith("front_owners") for k in pareto["history_keys"]) and pareto["artifacts"]
    # a Pareto model, exported by the command the report prints, runs in a process without this package
    line = next(x for x in proc.stdout.splitlines() if "lightning-compress export" in x)
    command = line.split(": ", 1)[1].split()
    export_dir = tmp_path / "exported"
    subprocess.run(
        [PY, "-m", "lightning_compress.cli.main", *command[1:4], str(export_dir)], check=True, cwd=tmp_path
    )
    script = (
        "import sys, torch\n"
        "assert 'lightning_compress' not in sys.modules\n"
        f"p = torch.export.load({str(export_dir / 'model.pt2')!r}).module()\n"
        "print(tuple(p(torch.rand(3, 1, 28, 28)).shape))\n"
    )
    run = subprocess.run([PY, "-I", "-c", script], capture_output=True, text=True, cwd="/")
    assert run.stdout.strip() == "(3, 10)", run.stderr


def test_latency_is_measured_a_larger_model_is_slower_and_the_spread_is_recorded() -> None:
    torch.manual_seed(0)
    small = nn.Sequential(nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 10))
    large = nn.Sequential(nn.Linear(256, 2048), nn.ReLU(), nn.Linear(2048, 10))
    x = torch.zeros(1, 256)
    a = measure_latency(small, x, batch_size=128, runs=15)
    b = measure_latency(large, x, batch_size=128, runs=15)
    assert b.median_ms > 2 * a.median_ms
    assert a.q25_ms <= a.median_ms <= a.q75_ms and a.min_ms <= a.q25_ms and a.runs == 15
    assert b.spread_ms >= 0 and b.as_dict()["batch_size"] == 128
    assert torch.get_num_threads() >= 1  # restored
    with pytest.raises(ValueError, match="batch_size"):
        measure_latency(small, x, batch_size=0)


def test_architecture_key_sees_shapes_not_values() -> None:
    a, b = nn.Sequential(nn.Linear(8, 4), nn.ReLU()), nn.Sequential(nn.Linear(8, 4), nn.ReLU())
    assert architecture_key(a) == architecture_key(b)
    assert architecture_key(a) != architecture_key(nn.Sequential(nn.Linear(8, 3), nn.ReLU()))
    assert architecture_key(a) != architecture_key(nn.Sequential(nn.Linear(8, 4), nn.Tanh()))


def _trial(
    method: str,
    params: int,
    acc: float,
    macs: int | None = None,
    latency: float | None = None,
    q: float = 0.0,
):  # type: ignore[no-untyped-def]
    attrs = {
        "method": method,
        "params": params,
        "macs": macs or params,
        "dense_params": 1000,
        "dense_macs": 1000,
    }
    if latency is not None:
        attrs.update(
            latency=latency,
            latency_q25=latency - q,
            latency_q75=latency + q,
            architecture=f"{method}{params}",
        )
    return create_trial(values=[float(params), acc], user_attrs=attrs)


def test_compare_methods_fronts_hypervolumes_owners_and_disagreements() -> None:
    study = optuna.create_study(directions=["minimize", "maximize"])
    study.add_trials(
        [
            _trial("a", 100, 0.80, macs=100, latency=1.0),
            _trial("a", 500, 0.90, macs=500, latency=3.0),
            _trial("b", 200, 0.88, macs=150, latency=4.0, q=0.1),  # fewer MACs than a's 500, yet slower
            _trial("b", 300, 0.85, macs=300, latency=2.0),  # dominated by b's 200
            _trial("b", 900, 0.95, macs=900, latency=5.0),
        ]
    )
    report = compare_methods(study, "params")
    assert [t.user_attrs["params"] for t in report.fronts["a"]] == [100, 500]
    assert [t.user_attrs["params"] for t in report.fronts["b"]] == [200, 900]
    assert [t.user_attrs["params"] for t in report.fronts["union"]] == [100, 200, 500, 900]
    hv = report.hypervolume
    assert hv["union"] > max(hv["a"], hv["b"]) and hv["a"] == pytest.approx(0.9 * 0.8 + 0.5 * 0.1)
    assert [(s["method"], s["models"]) for s in report.stretches] == [("a", 1), ("b", 1), ("a", 1), ("b", 1)]
    assert (2, 1) in report.disagreements  # trial 2 (b, 150 MACs) runs slower than trial 1 (a, 500 MACs)
    text = format_methods(report)
    assert "who owns the union front" in text and "trial 2 has fewer MACs than trial 1" in text
    assert spearman([1, 2, 3], [3, 2, 1]) == -1.0


def test_front_of_leaves_out_infeasible_trials() -> None:
    feasible = _trial("a", 100, 0.5)
    infeasible = create_trial(
        values=[50.0, 0.9], user_attrs={"params": 50}, system_attrs={"constraints": [0.1]}
    )
    assert front_of([feasible, infeasible], "params") == [feasible]


def test_per_method_budgets_all_or_none_and_shipped_sweeps_load() -> None:
    for name in ("lenet300_methods", "lenet5_methods", "resnet_small_methods"):
        cfg = load_sweep(SWEEPS / f"{name}.yaml")
        assert cfg.n_trials == sum(m.n_trials or 0 for m in cfg.methods.values())
        assert {"group_lasso", "sparse_group_lasso", "low_rank", "dalr", "flexible_rank"} <= set(cfg.methods)
    with pytest.raises(ConfigError, match=r"methods\.svd\.n_trials"):
        load_sweep(SWEEPS / "lenet300_methods.yaml", ["methods.svd.n_trials=null"])
    with pytest.raises(ConfigError, match=r"latency\.batch_size"):
        load_sweep(SWEEPS / "lenet300_methods.yaml", ["latency.batch_size=0"])


def test_a_third_party_model_from_its_import_path_competes_in_a_sweep(
    tmp_path: Path, real_fmnist: Path
) -> None:
    """timm's VisionTransformer (the zoo), named by ``model.class_path``: three methods, one trial each."""
    sweep = yaml.safe_load((SWEEPS / "vit_timm_methods.yaml").read_text())
    sweep["base"] = str(ROOT / "configs" / "vit_timm_fmnist.yaml")
    sweep["methods"] = {
        m: {**sweep["methods"][m], "n_trials": 1} for m in ("group_lasso", "low_rank", "dalr")
    }
    sweep["methods"]["dalr"]["compression"]["low_rank_compression"]["at_epoch"] = 0
    sweep["overrides"] = [
        f"data.data_dir={real_fmnist}", "data.val_size=500", "trainer.max_epochs=2",
        "trainer.limit_train_batches=15", "trainer.limit_test_batches=4", "trainer.limit_val_batches=4",
    ]  # fmt: skip
    sweep.update(output_dir=str(tmp_path / "out"), wandb={"enabled": False}, early_stop={"min_val_acc": None})
    sweep["objectives"]["accuracy_floor"] = None
    sweep["latency"] = {"batch_size": 16, "runs": 5, "warmup": 1}
    path = tmp_path / "vit.yaml"
    path.write_text(yaml.safe_dump(sweep))
    script = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "from tests.zoo import zoo; zoo('timm')\n"  # the zoo's timm, importable beside our CPU torch
        "from lightning_compress.sweep import run_sweep\n"
        f"run_sweep({str(path)!r}, [], workers=1)\n"
    )
    proc = subprocess.run([PY, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(
        study_name="vit_timm_methods",
        storage=open_storage(str(tmp_path / "out" / "vit_timm_methods" / "journal.log"), create=False),
    )
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert sorted(t.user_attrs["method"] for t in done) == ["dalr", "group_lasso", "low_rank"]
    dense = done[0].user_attrs["dense_params"]
    assert any(t.user_attrs["params"] < dense for t in done)  # something was compressed
    assert all(t.user_attrs["latency"] > 0 for t in done)
    assert "who owns the union front" in proc.stdout


def test_a_model_import_path_that_does_not_import_is_one_line(tmp_path: Path) -> None:
    from lightning_compress.config import load_config

    with pytest.raises(ConfigError, match=r"model\.class_path: cannot import model 'nosuch\.Net'"):
        load_config(ROOT / "configs" / "lenet300_fmnist.yaml", ["model.class_path=nosuch.Net"])
    with pytest.raises(ConfigError, match=r"model\.class_path: .*not a torch\.nn\.Module"):
        load_config(ROOT / "configs" / "lenet300_fmnist.yaml", ["model.class_path=collections.OrderedDict"])


def test_timm_attention_macs_match_torch_pruning_and_follow_a_split(monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning_compress.surgery import compress_low_rank, count_params_and_macs
    from tests.zoo import zoo

    monkeypatch.setattr(sys, "path", list(sys.path))  # the zoo leaves sys.path (and spawned workers) as found
    timm = zoo("timm")
    import torch_pruning as tp

    vit = timm.models.vision_transformer.VisionTransformer(
        img_size=28, patch_size=7, in_chans=1, num_classes=10, embed_dim=64, depth=2, num_heads=4
    )
    x = torch.zeros(1, 1, 28, 28)
    counter = tp.utils.op_counter  # its timm hook, registered whether or not timm imported before it
    attention = timm.models.vision_transformer.Attention
    monkeypatch.setitem(counter.MODULES_MAPPING, attention, counter.timm_multihead_attention_counter_hook)
    macs, params = tp.utils.count_ops_and_params(vit, x)
    assert count_params_and_macs(vit, x) == (params, int(macs))  # the same count while dense
    compress_low_rank(vit, None, method="svd", param_ratio=0.3)  # qkv and proj become two thin layers
    small_params, small_macs = count_params_and_macs(vit, x)  # Torch-Pruning's own counter fails here
    assert small_params < params and small_macs < macs
