"""Pure tensor math: penalties, proximal operators, low-rank solves, size counts."""

from lightning_compress.functional.size import count_params_and_macs

__all__ = ["count_params_and_macs"]
