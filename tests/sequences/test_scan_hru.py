"""The parallel scan against the sequential loop, and the HRUs' dynamics against their Hamiltonian."""
import math

import pytest
import torch

from eqprop.models.hamiltonian import LinearHRU, NonlinearHRU
from eqprop.models.scan import linear_recurrence_loop, linear_recurrence_scan


def _system(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.rand(n, generator=g) * 3.9  # dt^2 A in [0, 3.9]: the stable range of leapfrog
    return (1 - k / 2, 1 - k / 4, -k, 1 - k / 2), g


@pytest.mark.parametrize("method,block", [("blocked", None), ("blocked", 3), ("blocked", 64), ("doubling", None)])
@pytest.mark.parametrize("steps", [1, 2, 7, 100, 1000])
def test_scan_equals_loop(method, block, steps):
    m, g = _system()
    by, bw = torch.randn(3, steps, 5, generator=g), torch.randn(3, steps, 5, generator=g)
    y0, w0 = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    for start in [(None, None), (y0, w0)]:
        ref = linear_recurrence_loop(m, by, bw, *start)
        out = linear_recurrence_scan(m, by, bw, *start, block=block, method=method)
        for a, b in zip(out, ref):
            assert torch.allclose(a, b, rtol=0, atol=1e-10 * max(1.0, float(b.abs().max())))


def test_scan_gradient_equals_loop_gradient():
    m, g = _system()
    m = [t.clone().requires_grad_(True) for t in m]
    by = torch.randn(2, 50, 5, generator=g, requires_grad=True)
    bw = torch.randn(2, 50, 5, generator=g, requires_grad=True)
    weights = torch.randn(2, 50, 5, generator=g)
    grads = []
    for run in (linear_recurrence_loop, linear_recurrence_scan):
        y, w = run(m, by, bw)
        grads.append(torch.autograd.grad(((y + 0.3 * w) * weights).sum(), [*m, by, bw]))
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-9)


def test_scan_rejects_bad_shapes():
    m, _ = _system()
    with pytest.raises(ValueError, match="batch, steps, channels"):
        linear_recurrence_scan(m, torch.zeros(2, 5), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="unknown scan method"):
        linear_recurrence_scan(m, torch.zeros(1, 4, 5), torch.zeros(1, 4, 5), method="magic")


@pytest.mark.parametrize("cls", [LinearHRU, NonlinearHRU])
def test_force_is_gradient_of_potential(cls):
    torch.manual_seed(0)
    hru = cls(4, 6, 4).double()
    coef = hru.coefficients()
    y = torch.randn(3, 6, requires_grad=True)
    v = torch.randn(3, 6)
    (auto,) = torch.autograd.grad(hru.potential(y, v, coef).sum(), y)
    assert torch.allclose(hru.force(y, v, coef), auto, atol=1e-12)


@pytest.mark.parametrize("cls", [LinearHRU, NonlinearHRU])
def test_leapfrog_is_time_reversible_and_nearly_conserves_energy(cls):
    """R Phi R Phi = id (momentum flip, same step), the property RHEL's echo rests on."""
    torch.manual_seed(1)
    hru = cls(4, 6, 4, complex=True).double()
    with torch.no_grad():
        coef = hru.coefficients()
    y, w = torch.randn(3, 12), torch.randn(3, 12) * 0.1
    v = torch.randn(3, 12)
    y1, w1, _ = hru.leapfrog(y, w, v, coef)
    y2, w2, _ = hru.leapfrog(y1, -w1, v, coef)
    assert torch.allclose(y2, y, atol=1e-13) and torch.allclose(-w2, w, atol=1e-13)
    # a long free run with a constant drive keeps the (step-scaled) energy bounded: no dissipation, no blow-up
    e0 = hru.energy(y, w, v, coef)
    for _ in range(2000):
        y, w, _ = hru.leapfrog(y, w, v, coef)
    e1 = hru.energy(y, w, v, coef)
    assert torch.allclose(e1, e0, rtol=0.05, atol=0.05 * float(e0.abs().max()))


def test_linear_hru_map_is_symplectic_and_scan_equals_sequential():
    torch.manual_seed(2)
    hru = LinearHRU(3, 8, 3).double()
    coef = hru.coefficients()
    m11, m12, m21, m22 = hru.transition(coef)
    assert torch.allclose(m11 * m22 - m12 * m21, torch.ones(8), atol=1e-14)  # det M = 1
    v = torch.randn(2, 300, 8)
    kicks = torch.randn(2, 300, 8)
    y0, w0 = torch.randn(2, 8), torch.randn(2, 8)
    fast = hru.trajectory(v, y0, w0, kicks=kicks, coef=coef, parallel=True)
    slow = super(LinearHRU, hru).trajectory(v, y0, w0, kicks=kicks, coef=coef)  # the leapfrog loop
    loop = hru.trajectory(v, y0, w0, kicks=kicks, coef=coef, parallel=False)
    for a, b, c in zip(fast, slow, loop):
        assert torch.allclose(a, b, atol=1e-10) and torch.allclose(c, b, atol=1e-10)


def test_complex_hru_output_is_real_part_of_complex_dynamics():
    """complex B, C: the 2N real channels equal a complex state driven by B u, read out as Re(C y)."""
    torch.manual_seed(3)
    hru = LinearHRU(3, 4, 3, complex=True).double()
    coef = hru.coefficients()
    u = torch.randn(2, 40, 3)
    y, _, _ = hru.trajectory(hru.drive(u, coef), coef=coef)
    out = hru.output(y, u, coef)
    bc = torch.complex(hru.B, hru.B_im)
    cc = torch.complex(hru.C, hru.C_im)
    dt2 = torch.sigmoid(hru.dt_raw) ** 2
    a = 4 * torch.sigmoid(hru.a_raw)
    yc = torch.zeros(2, 4, dtype=torch.complex128)
    wc = torch.zeros_like(yc)
    outs = []
    for t in range(40):
        drive = u[:, t].to(torch.complex128) @ bc.T
        ym = yc + wc / 2
        wc = wc - dt2 * (a * ym - drive)
        yc = ym + wc / 2
        outs.append((yc @ cc.T).real + hru.D * u[:, t])
    assert torch.allclose(out, torch.stack(outs, 1), atol=1e-11)


def test_parametrisation_keeps_a_nonnegative_and_leapfrog_stable():
    hru = LinearHRU(2, 50, 2)
    with torch.no_grad():
        hru.a_raw.uniform_(-30, 30)
        hru.dt_raw.uniform_(-30, 30)
    coef = hru.coefficients()
    k = coef["s"] * coef["A"]
    assert bool((coef["A"] >= 0).all()) and bool((k < 4).all())
    assert math.isclose(float(hru.dt.max()), float(torch.sigmoid(hru.dt_raw.detach()).max()))
