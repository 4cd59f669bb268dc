"""Shared test settings.

`make test` runs two pytest workers on two cores. PyTorch would start one thread per core in
each worker (and in every subprocess they spawn), and oversubscribed OpenMP threads spin-wait:
a tiny training run then takes 10x longer. One thread per process avoids that, and it also
fixes the thread count, which CPU bit-identity of training runs depends on.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
