"""lightning-compress: make networks smaller while they train, with Lightning callbacks.

Layers, importing downwards only (an import-linter contract checks it)::

    cli, sweep      entry points: the command line, Optuna sweeps
    run             one training run from a config (used by both entry points)
    config          structured configs; one section per compression method (config.METHODS)
    callbacks       WHEN: schedules, Lightning hooks, DDP, checkpoint state
    regularizers    penalties with their proximal steps, usable without Lightning
    surgery         shape changes, history replay, optimizer rebinding, activation statistics, size
    functional      pure tensor math

``data`` and ``models`` are examples for demos, benchmarks and tests; the library does not import them.
Where a new method's pieces go: ``docs/adding-a-method.md``.
"""

__version__ = "0.1.0"
