"""RHEL against BPTT (autograd through every time step), in float64."""
import math

import numpy as np
import pytest
import torch

from eqprop.diagnostics import compare_gradients
from eqprop.models import HopfieldMLP
from eqprop.models.hamiltonian import HSSM
from eqprop.rules import RHEL, make_rule
from eqprop.rules.sequence import sequence_bptt


def _rel(g, ref):
    num = math.sqrt(sum(float((g[n] - ref[n]).square().sum()) for n in ref))
    return num / math.sqrt(sum(float(ref[n].square().sum()) for n in ref))


def _worst(g, ref):
    return max(float((g[n] - ref[n]).norm() / ref[n].norm()) for n in ref if float(ref[n].norm()) > 0)


def _model(hru="linear", pool="mean", complex=False, d_out=4, seed=0):
    torch.manual_seed(seed)
    return HSSM(3, d_out, d_model=8, d_state=6, blocks=2, hru=hru, complex=complex, pool=pool).double()


def _batch(pool="mean", steps=41, d_out=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(5, steps, 3, generator=g)
    y = torch.randn(5, steps, d_out, generator=g) if pool == "none" else torch.randint(0, d_out, (5,), generator=g)
    return x, y


@pytest.mark.parametrize("pool", ["mean", "last", "none"])
@pytest.mark.parametrize("complex", [False, True])
@pytest.mark.parametrize("chunk", [None, 9])
def test_rhel_equals_bptt_on_linear_hssm(pool, complex, chunk):
    """Discrete-time RHEL on linear HRUs is BPTT through the leapfrog map: every parameter of
    both blocks (HRU, norms, GLU, C, D), the encoder and the readout, to rounding error."""
    model = _model(pool=pool, complex=complex)
    x, y = _batch(pool)
    ref, r_ref = sequence_bptt(model, x, y)
    for eps in (1e-3, 0.5):  # the echoes are affine in the kicks: any eps is exact
        g, r = RHEL(eps=eps, chunk=chunk).estimate(model, x, y)
        assert _worst(g, ref) <= 1e-6, (eps, _worst(g, ref))
        assert _rel(g, ref) <= 1e-9
    assert torch.allclose(r.loss, r_ref.loss) and torch.allclose(r.output, r_ref.output)
    assert set(g) == {n for n, _ in model.named_parameters()}


def test_rhel_sequential_loop_equals_scan():
    model = _model()
    x, y = _batch()
    a, _ = RHEL(eps=1e-2, chunk=16, parallel=True).estimate(model, x, y)
    b, _ = RHEL(eps=1e-2, chunk=16, parallel=False).estimate(model, x, y)
    assert _rel(a, b) <= 1e-10


def test_rhel_nonlinear_error_falls_as_eps_squared():
    """For the log-cosh HRU the echoes are only locally linear: the error is O(eps^2)."""
    model = _model(hru="nonlinear")
    x, y = _batch(steps=30)
    ref, _ = sequence_bptt(model, x, y)
    eps = np.array([0.08, 0.04, 0.02, 0.01])
    err = np.array([_rel(RHEL(eps=float(e), chunk=None).estimate(model, x, y)[0], ref) for e in eps])
    slope, _ = np.polyfit(np.log(eps), np.log(err), 1)
    assert 1.8 <= slope <= 2.2, (slope, err)
    assert err[-1] < 1e-3


def test_rhel_padded_ragged_batch_equals_bptt_and_unpadded_runs():
    """NaN after a sequence's end is padding: pooling and 'last' skip it, RHEL stays exact."""
    for pool in ("mean", "last"):
        model = _model(pool=pool)
        x, y = _batch(steps=20)
        lengths = [20, 13, 7, 20, 1]
        for i, n in enumerate(lengths):
            x[i, n:] = float("nan")
        ref, r_ref = sequence_bptt(model, x, y)
        g, r = RHEL(eps=1e-2, chunk=6).estimate(model, x, y)
        assert _worst(g, ref) <= 1e-6
        with torch.no_grad():
            for i, n in enumerate(lengths):  # each padded sequence reads out as if alone and unpadded
                assert torch.allclose(model(x[i:i + 1, :n]), r.output[i:i + 1], atol=1e-12)


def test_rhel_step_writes_grad_and_infer_is_a_forward_pass():
    model = _model()
    x, y = _batch()
    ref, _ = sequence_bptt(model, x, y)
    rule = make_rule("rhel", eps=0.01, chunk=None, beta=0.3)  # unrelated settings are ignored
    assert isinstance(rule, RHEL)
    result = rule.step(model, x, y)
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, ref[n], atol=1e-9)
    inf = rule.infer(model, x, y)
    assert torch.allclose(inf.output, result.output) and torch.allclose(inf.loss, result.loss)
    assert torch.allclose(make_rule("bptt").infer(model, x, y).output, result.output)


def test_compare_gradients_on_sequence_model():
    model = _model()
    x, y = _batch()
    res = compare_gradients(model.float(), x.float(), y, rules=["rhel"], reference="bptt", eps=1e-3)
    assert res.row("rhel")["rel_error"] <= 1e-6 and res.row("rhel", "blocks.1.hru.a_raw")["cosine"] > 1 - 1e-9


def test_rhel_rejects_non_hamiltonian_models_and_bad_settings():
    with pytest.raises(ValueError, match="Hamiltonian state-space"):
        RHEL().estimate(HopfieldMLP([4, 3, 2]), torch.rand(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="eps"):
        RHEL(eps=0.0)
    with pytest.raises(ValueError, match="chunk"):
        RHEL(chunk=0)


def test_hssm_input_errors_name_the_problem():
    model = _model()
    with pytest.raises(ValueError, match="expects 3 input channels, got 5"):
        model(torch.randn(2, 10, 5))
    with pytest.raises(ValueError, match="ragged batch.*pad_sequences"):
        model([torch.randn(10, 3), torch.randn(7, 3)])
    x = torch.randn(2, 10, 3)
    x[0, 4] = float("nan")
    with pytest.raises(ValueError, match="missing values"):
        model(x)
    with pytest.raises(ValueError, match="batch, steps, channels"):
        model(torch.randn(10, 3))
    with pytest.raises(ValueError, match="unknown pool"):
        HSSM(3, 2, pool="max")
    with pytest.raises(ValueError, match="unknown HRU"):
        HSSM(3, 2, hru="quantum")


def test_rhel_sequence_regression_with_padding_and_nan_targets():
    model = _model(pool="none", d_out=2)
    x, y = _batch(pool="none", steps=15, d_out=2)
    x[1, 9:] = float("nan")
    y[1, 9:] = float("nan")  # targets past the end do not matter
    ref, r_ref = sequence_bptt(model, x, y)
    g, r = RHEL(eps=1e-2, chunk=4).estimate(model, x, y)
    assert torch.isfinite(r_ref.loss) and torch.allclose(r.loss, r_ref.loss)
    assert _worst(g, ref) <= 1e-6
