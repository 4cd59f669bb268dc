"""PyTorch side of signscope: data, models, pruning and the IMP/LRR training loops.

Needs the ``train`` extra (``pip install 'signscope[train]'``). The inspection layer in
``signscope`` never imports this package.
"""
