"""Low-precision relaxation: the fast path against the float32 path."""
import pytest
import torch

import eqprop
from eqprop.models import HopfieldMLP
from eqprop.models.conv import ConvHopfield
from eqprop.precision import relaxation_copy


def cosine(a, b):
    a = torch.cat([v.flatten() for v in a.values()])
    b = torch.cat([v.flatten() for v in b.values()])
    return float(a @ b / (a.norm() * b.norm()))


def test_copy_is_synced_and_reused():
    m = HopfieldMLP([10, 8, 3])
    low = relaxation_copy(m, "bfloat16")
    assert next(low.parameters()).dtype == torch.bfloat16 and relaxation_copy(m, None) is m
    with torch.no_grad():
        m.layers[0].weight.add_(1.0)
    again = relaxation_copy(m, "bfloat16")
    assert again is low
    torch.testing.assert_close(again.layers[0].weight.float(), m.layers[0].weight, rtol=1e-2, atol=1e-2)
    with pytest.raises(ValueError, match="bfloat16"):
        relaxation_copy(m, "int8")


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_ep_gradient_follows_float32(dtype):
    torch.manual_seed(0)
    m = HopfieldMLP([64, 48, 10])
    x, y = torch.rand(32, 64), torch.randint(0, 10, (32,))
    kw = dict(beta=0.5, free_steps=30, nudge_steps=10)
    g32 = eqprop.gradients(m, x, y, "ep-centered", **kw)
    g16 = eqprop.gradients(m, x, y, "ep-centered", relax_dtype=dtype, **kw)
    assert all(v.dtype == torch.float32 for v in g16.values())  # float32 accumulation
    assert cosine(g16, g32) > 0.999


def test_low_precision_conv_relaxation():
    torch.manual_seed(0)
    m = ConvHopfield((1, 16, 16), [8, 16], 10)
    x, y = torch.rand(16, 1, 16, 16), torch.randint(0, 10, (16,))
    kw = dict(beta=0.5, free_steps=20, nudge_steps=8)
    g32 = eqprop.gradients(m, x, y, "ep-centered", **kw)
    g16 = eqprop.gradients(m, x, y, "ep-centered", relax_dtype="bfloat16", **kw)
    assert cosine(g16, g32) > 0.99
    r = eqprop.rules.make_rule("ep-centered", relax_dtype="bfloat16", free_steps=20).infer(m, x, y)
    assert r.output.dtype == torch.float32 and r.output.shape == (16, 10)
