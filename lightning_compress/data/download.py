"""Downloading data files with checksum checks, written atomically so a failed fetch leaves nothing behind."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request

from tqdm.auto import tqdm

__all__ = ["download_file", "file_checksum", "verify_checksum"]

_CHUNK = 1 << 16


def file_checksum(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """Hex digest of a file.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "x")
        >>> _ = open(path, "wb").write(b"abc")
        >>> file_checksum(path)[:16]
        'ba7816bf8f01cfea'
    """
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path: str | os.PathLike[str], checksum: str) -> bool:
    """Check a file against ``"algorithm:hexdigest"`` (e.g. ``"sha256:ab12..."``).

    Example:
        >>> import tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "f"); _ = open(path, "wb").write(b"abc")
        >>> verify_checksum(path, "md5:900150983cd24fb0d6963f7d28e17f72"), verify_checksum(path, "md5:00")
        (True, False)
    """
    algorithm, _, expected = checksum.partition(":")
    if not expected:
        raise ValueError(f"checksum must look like 'sha256:<hex>', got {checksum!r}")
    return file_checksum(path, algorithm) == expected.lower()


def download_file(
    url: str, dest: str | os.PathLike[str], checksum: str | None = None, *, timeout: float = 60.0
) -> None:
    """Download ``url`` to ``dest``, checking ``checksum`` before the file appears at ``dest``.

    The bytes go to a temporary file beside ``dest`` that is renamed only once complete and verified,
    so an interrupted or corrupted download never leaves a partial file under the final name.

    Raises:
        OSError: If the server cannot be reached or answers with an error (the URL is named).
        ValueError: If the downloaded bytes do not match ``checksum``.

    Example:
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp()); (folder / "src").write_bytes(b"abc")
        3
        >>> download_file((folder / "src").as_uri(), folder / "copy", "md5:900150983cd24fb0d6963f7d28e17f72")
        >>> (folder / "copy").read_bytes()
        b'abc'
    """
    dest = os.fspath(dest)
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest) or ".", prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    total = int(response.headers.get("Content-Length") or 0) or None
                    name = os.path.basename(dest)
                    with tqdm(
                        total=total, unit="B", unit_scale=True, desc=name, leave=False, disable=None
                    ) as bar:
                        for chunk in iter(lambda: response.read(_CHUNK), b""):
                            out.write(chunk)
                            bar.update(len(chunk))
            except (urllib.error.URLError, TimeoutError) as err:
                raise OSError(f"could not download {url}: {err}") from err
        if checksum is not None and not verify_checksum(tmp, checksum):
            raise ValueError(f"checksum mismatch for {url}: expected {checksum}, got a different file")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
