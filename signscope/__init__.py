"""signscope: inspect the checkpoints of iterative-pruning runs (IMP, LRR).

Reproduces and inspects "Masks, Signs, And Learning Rate Rewinding" (Gadhikar & Burkholz,
ICLR 2024). Importing this package never imports torch, and stays cheap: the API names
(``open_run``, ``Run``, ``masks``, ``signs``, ``acc``, ``SignscopeError``) load
:mod:`signscope.api` (and polars) on first use.
"""

from __future__ import annotations

from signscope.version import __version__

_API = ("open_run", "Run", "masks", "signs", "acc", "SignscopeError", "RunFormatError")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from signscope import api

        return getattr(api, name)
    raise AttributeError(f"module 'signscope' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
