"""GLEP/HEB tests compute in float64 (the truth they check against), on one torch thread."""
import pytest

from tests.conftest import float64_one_thread


_float64_one_thread = pytest.fixture(autouse=True)(float64_one_thread)
