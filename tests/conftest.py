import functools

import pytest
import torch

from eqprop.models import HopfieldMLP

# Real datasets are read from $EQPROP_DATA (CI: ../shared/data, set by .ci/run) or the default
# roots; Fashion-MNIST also from Debian's dataset-fashion-mnist, which the setup installs.
# Tests that need a dataset carry ``@pytest.mark.data("mnist", ...)`` and skip, naming the files,
# where it is not found. Tests never download.


@functools.lru_cache(maxsize=None)
def dataset_missing(name: str) -> str | None:
    """None if ``name``'s test split loads, else the first line of the reason."""
    from eqprop.data import DatasetNotFoundError, load_dataset

    try:
        load_dataset(name, split="test")
    except DatasetNotFoundError as e:
        return str(e).splitlines()[0]
    return None


def pytest_configure(config):
    config.addinivalue_line("markers", "data(*names): needs these real datasets; skips naming the files when absent")


def pytest_runtest_setup(item):
    for mark in item.iter_markers(name="data"):
        for name in mark.args:
            reason = dataset_missing(name)
            if reason:
                pytest.skip(f"needs dataset {name!r} (set EQPROP_DATA): {reason}")


@pytest.fixture
def tiny_batch():
    """A random float64 batch for a [12, 10, 8, 4] network: x (6, 12) in [0, 1], y (6,)."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 12, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (6,), generator=g)
    return x, y


def make_net(output="mse", activation="hard_sigmoid", sizes=(12, 10, 8, 4), gain=1.5, seed=0):
    """A two-hidden-layer float64 HopfieldMLP (three free layers with MSE output)."""
    torch.manual_seed(seed)
    n = len(sizes) - 1
    return HopfieldMLP(list(sizes), activation=activation, output=output, gains=[gain] * n).double()
