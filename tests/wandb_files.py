"""Read W&B offline run files (``run-*.wandb``: LevelDB-log framed protobuf records) for the tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32 * 1024
HEADER = 7  # ":W&B", a 2-byte magic and a version byte


def records(path: Path) -> Iterator[Any]:
    """Every record of one ``.wandb`` file, in order."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, parts = HEADER, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # the block's tail is padding
            pos += left
            continue
        length = int.from_bytes(data[pos + 4 : pos + 6], "little")
        kind = data[pos + 6]
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        parts += chunk
        if kind in (1, 4):  # full, or the last piece
            record = pb.Record()
            record.ParseFromString(parts)
            parts = b""
            yield record


def run_summary(folder: Path) -> dict[str, Any]:
    """Run id, name, config (JSON-decoded), history keys and artifact names of one offline run folder."""
    (path,) = folder.glob("*.wandb")
    out: dict[str, Any] = {
        "config": {}, "history_keys": set(), "summary_keys": set(), "artifacts": [], "job_type": None
    }  # fmt: skip
    for r in records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out["id"], out["name"], out["job_type"] = r.run.run_id, r.run.display_name, r.run.job_type
            out["config"].update({i.key: json.loads(i.value_json) for i in r.run.config.update})
        elif kind == "config":
            out["config"].update({i.key: json.loads(i.value_json) for i in r.config.update})
        elif kind == "history":
            out["history_keys"].update(i.key or "/".join(i.nested_key) for i in r.history.item)
        elif kind == "summary":
            out["summary_keys"].update(i.key or "/".join(i.nested_key) for i in r.summary.update)
        elif kind == "artifact":
            out["artifacts"].append((r.artifact.name, r.artifact.type))
    return out
