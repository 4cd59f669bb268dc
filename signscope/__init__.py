"""signscope: inspect the checkpoints of iterative-pruning runs (IMP, LRR).

Reproduces and inspects "Masks, Signs, And Learning Rate Rewinding" (Gadhikar & Burkholz,
ICLR 2024). Importing this package never imports torch.
"""

__version__ = "0.1.0"
