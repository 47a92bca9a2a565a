"""The ``lightning-compress`` command line: ``train``, ``sweep``, ``report``, ``neurons``."""

from lightning_compress.cli.main import main

__all__ = ["main"]
