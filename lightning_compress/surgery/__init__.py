"""Shape changes of a model: removing groups, factorizing layers, rebinding optimizers, replaying history."""
