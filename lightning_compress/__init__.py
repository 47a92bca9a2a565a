"""lightning-compress: make networks smaller while they train, with Lightning callbacks.

Layers, importing downwards only: ``cli``/``sweep`` (entry points) -> ``callbacks`` (when) ->
``surgery`` (shape changes) -> ``functional`` (tensor math); ``data`` and ``models`` are examples.
"""

__version__ = "0.1.0"
