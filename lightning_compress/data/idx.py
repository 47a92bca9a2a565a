"""Reader for the IDX format used by MNIST and Fashion-MNIST (optionally gzip-compressed)."""

from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np
import torch

__all__ = ["read_idx", "write_idx"]

# IDX type codes -> big-endian numpy dtypes.
_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _DTYPES.items()}


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:
        raise ValueError(
            f"{os.fspath(path)!r} is not a complete gzip file ({err}); delete it and fetch it again"
        ) from None


def read_idx(path: str | os.PathLike[str]) -> torch.Tensor:
    """Read an IDX file (``.gz`` or raw) into a tensor.

    Args:
        path: The file to read.

    Returns:
        A tensor with the file's shape and dtype (``uint8`` for MNIST images and labels).

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file is truncated, corrupt, or not IDX; the message names the file.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte.gz")
        >>> write_idx(path, torch.tensor([3, 1, 4], dtype=torch.uint8))
        >>> read_idx(path)
        tensor([3, 1, 4], dtype=torch.uint8)
    """
    data = _read_bytes(path)
    name = os.fspath(path)
    if len(data) < 4:
        raise ValueError(f"{name!r} is too short to be an IDX file ({len(data)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _DTYPES or ndim == 0:
        raise ValueError(f"{name!r} is not an IDX file (bad magic number {data[:4].hex()})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{name!r} is truncated: its header needs {header} bytes, it has {len(data)}")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_DTYPES[code])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"{name!r} is truncated or corrupt: shape {tuple(shape)} needs {expected} bytes of data, "
            f"it has {len(data) - header}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


def write_idx(path: str | os.PathLike[str], tensor: torch.Tensor) -> None:
    """Write a tensor as an IDX file, gzip-compressed when ``path`` ends in ``.gz``.

    Args:
        path: Where to write.
        tensor: A tensor of dtype uint8, int8, int16, int32, float32 or float64.

    Example:
        >>> import tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte.gz")
        >>> write_idx(path, torch.tensor([3, 1, 4], dtype=torch.uint8)); read_idx(path).tolist()
        [3, 1, 4]
    """
    array = tensor.detach().cpu().numpy()
    code = _CODES.get(array.dtype)
    if code is None:
        raise TypeError(f"IDX cannot store dtype {array.dtype}; use one of {sorted(map(str, _CODES))}")
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.dtype(_DTYPES[code])).tobytes()
    if os.fspath(path).endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    with open(path, "wb") as fh:
        fh.write(payload)
