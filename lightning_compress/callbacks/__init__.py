"""Lightning callbacks that decide when compression steps happen."""

from lightning_compress.callbacks._proximal import ProxSchedule
from lightning_compress.callbacks.atomic_checkpoint import AtomicCheckpointIO, EpochCheckpoint
from lightning_compress.callbacks.compressible import CompressibleMixin
from lightning_compress.callbacks.flexible_rank import FlexibleRank
from lightning_compress.callbacks.group_sparsity import GroupSparsity
from lightning_compress.callbacks.low_rank import LowRank
from lightning_compress.callbacks.low_rank_compression import LowRankCompression
from lightning_compress.callbacks.neuron_report import NeuronReport
from lightning_compress.callbacks.structured_pruning import StructuredPruning

__all__ = [
    "AtomicCheckpointIO",
    "CompressibleMixin",
    "EpochCheckpoint",
    "FlexibleRank",
    "GroupSparsity",
    "LowRank",
    "LowRankCompression",
    "NeuronReport",
    "ProxSchedule",
    "StructuredPruning",
]
