"""``python -m signscope`` (also the entry point that ``torchrun -m signscope`` uses)."""

from signscope.cli import entry

entry()
