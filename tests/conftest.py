import os
from pathlib import Path

import pytest
import torch

from eqprop.models import HopfieldMLP

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _data_root():
    """Tests read real datasets from $EQPROP_DATA, default ../shared/data (never the network)."""
    os.environ.setdefault("EQPROP_DATA", str(SHARED.resolve()))
    yield


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
