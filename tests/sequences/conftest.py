"""Sequence-model tests compute in float64 (the truth they check against) unless a test says
otherwise, on one torch thread (their tensors are small: extra threads only add contention)."""
import pytest

from tests.conftest import float64_one_thread


_float64_one_thread = pytest.fixture(autouse=True)(float64_one_thread)
