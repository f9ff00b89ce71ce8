"""GLEP/HEB tests compute in float64 (the truth they check against), on one torch thread."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _float64_one_thread():
    old_dtype, old_threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(old_dtype)
    torch.set_num_threads(old_threads)
