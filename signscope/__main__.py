"""``python -m signscope`` (also the entry point that ``torchrun -m signscope`` uses)."""

import sys

from signscope.cli import main

sys.exit(main())
