"""Shared test settings.

`make test` runs two pytest workers on two cores. PyTorch would start one thread per core in
each worker (and in every subprocess they spawn), and oversubscribed OpenMP threads spin-wait:
a tiny training run then takes 10x longer. One thread per process avoids that, and it also
fixes the thread count, which CPU bit-identity of training runs depends on.
"""

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def mnist1d_root(tmp_path_factory):
    """A data root holding the generated MNIST-1D arrays, generated once per test process."""
    pytest.importorskip("mnist1d")
    from trainers.mnist1d import load_arrays

    root = tmp_path_factory.mktemp("mnist1d-data")
    load_arrays(root)
    return root
