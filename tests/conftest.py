import functools
import os

import pytest
import torch

from eqprop.models import HopfieldMLP

# -- real datasets --------------------------------------------------------------------------------
# Tests read real datasets only through the library's own search path: $EQPROP_DATA if set, else
# ./data and the per-user folder (and Debian's /usr/share/datasets/fashion-mnist). Nothing here
# names a particular folder: CI (`scripts/test.sh`, `.ci/run`) sets EQPROP_DATA=../shared/data.
#
# A test that needs a real dataset says so with the marker, by eqprop.data registry name:
#
#     @pytest.mark.requires_data("mnist")                    # one test
#     pytestmark = pytest.mark.requires_data("basicmotions")   # a whole module
#
# and is skipped, with a one-line reason naming the missing files, when no data root has them
# (both splits). Under CI with EQPROP_DATA set (.ci/run: ../shared/data) a missing dataset fails the
# test instead, and so does an EQPROP_DATA entry that does not exist (a misconfiguration).


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "requires_data(*names): needs these real datasets (eqprop.data names such as 'mnist', "
                   "'cifar10', 'basicmotions'); skipped, naming the missing files, when no data root has them")


@functools.lru_cache(maxsize=None)
def _missing_data(name: str, env: str | None, cwd: str) -> str | None:
    """None if ``name`` (both splits) is found, else the one-line skip reason."""
    from eqprop.data import DataRootError, DatasetNotFoundError, locate_dataset

    where = f"EQPROP_DATA={env}" if env else "EQPROP_DATA unset"
    try:
        for split in ("train", "test"):
            locate_dataset(name, split)
    except DataRootError as e:  # a data root that was named but does not exist: say so, never skip
        return f"!{e}"
    except DatasetNotFoundError as e:
        return f"needs real dataset {name!r}: {e.wanted or e} not found ({where}; CI sets EQPROP_DATA=../shared/data)"
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    for mark in item.iter_markers("requires_data"):
        for name in mark.args:
            reason = _missing_data(name, os.environ.get("EQPROP_DATA"), os.getcwd())
            if reason is not None and reason.startswith("!"):
                pytest.fail(f"needs real dataset {name!r}, but {reason[1:]}", pytrace=False)
            if reason is not None:
                if os.environ.get("CI") and os.environ.get("EQPROP_DATA"):  # CI names ../shared/data: it must have it
                    pytest.fail(f"EQPROP_DATA is set but does not provide the data: {reason}", pytrace=False)
                pytest.skip(reason)


def float64_one_thread():
    """Compute in float64 (the truth tests check against) on one torch thread; restores both.
    Folders whose tests all want this make it autouse in their conftest."""
    old_dtype, old_threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(old_dtype)
    torch.set_num_threads(old_threads)


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
