"""PyTorch side of signscope: data, models, pruning and the IMP/LRR training loops.

Needs the ``train`` extra (``pip install 'signscope[train]'``). The inspection layer in
``signscope`` imports one module of this package, :mod:`trainers.config`, which imports no
torch: the CLI builds ``signscope train``'s options from its settings, and ``signscope acc``
groups runs by its marks of which settings make a different experiment. Nothing else here is
imported by inspection.
"""
