"""check_inputs: the warning for raw 0..255 pixel values passed straight to a model."""

import warnings

import pytest
import torch

from eqprop.data import RawPixelWarning, check_inputs
from eqprop.data.transforms import to_float


def test_uint8_batch_warns():
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    with pytest.warns(RawPixelWarning, match=r"uint8 \(pixel values 0..255 used as inputs\).*to_float"):
        assert check_inputs(x) is x


def test_float_cast_without_scaling_warns():
    x = torch.randint(0, 256, (4, 784), generator=torch.Generator().manual_seed(0)).float()
    with pytest.warns(RawPixelWarning, match=r"whole numbers up to 25\d .*divide by 255"):
        check_inputs(x, what="training batch")


@pytest.mark.parametrize("x", [
    torch.rand(4, 784),                                     # scaled to [0, 1]
    torch.randn(4, 3, 8, 8),                                # normalised
    torch.randint(0, 2, (4, 20)).float(),                   # binary features
    torch.full((2, 5, 1), float("nan")),                    # all padding
    to_float(torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)),
    torch.randint(0, 3, (4,)),                              # labels are not inputs' business
    torch.zeros(0, 784),
])
def test_good_inputs_are_quiet(x):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_inputs(x)


def test_warning_points_at_the_caller():
    with pytest.warns(RawPixelWarning) as record:
        check_inputs(torch.zeros(1, 1, 2, 2, dtype=torch.uint8))
    assert record[0].filename == __file__
