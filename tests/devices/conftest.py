import pytest

from eqprop.data import load_dataset
from eqprop.data.transforms import to_float


@pytest.fixture(scope="module")
def mnist_small():
    """First 3,000 MNIST training images and 1,000 test images, flattened, in [0, 1]."""
    tr, te = load_dataset("mnist", split="train"), load_dataset("mnist", split="test")  # tests carry requires_data
    x = to_float(tr.images[:3000]).reshape(3000, -1)
    xt = to_float(te.images[:1000]).reshape(1000, -1)
    return x, tr.labels[:3000], xt, te.labels[:1000]
