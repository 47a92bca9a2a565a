"""History replay and export: the table of record kinds, replay on load, plain-PyTorch export."""

from lightning_compress.surgery.base.records import (
    append_history,
    get_history,
    history_version,
)  # the records, read where they are replayed
from lightning_compress.surgery.history.export import Normalize, export_model
from lightning_compress.surgery.history.registry import RECORD_KINDS, Replay
from lightning_compress.surgery.history.replay import apply_history, enable_history_restore, load_compressed

__all__ = [
    "RECORD_KINDS",
    "Normalize",
    "Replay",
    "append_history",
    "apply_history",
    "enable_history_restore",
    "export_model",
    "get_history",
    "history_version",
    "load_compressed",
]
