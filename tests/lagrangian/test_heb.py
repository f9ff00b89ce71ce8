"""Hamiltonian echo backpropagation on a 4x4 Kerr-cavity lattice."""
import torch
from glep_problems import loglog_slope

from eqprop.lagrangian.heb import (HEB, XOR_X, XOR_Y, KerrLattice, echo_gradient, heb_displacement,
                                   reference_gradient, train_xor)

ETAS = (1e-2, 1e-3, 1e-4)


def _xor():
    return XOR_X.double(), XOR_Y.double()


def test_echo_retraces_with_and_without_disorder():
    x, _ = _xor()
    for disorder in (0.0, 0.2):
        lat = KerrLattice(disorder=disorder)
        with torch.no_grad():
            psi0 = lat.initial_state(x)
            back = lat.echo(lat.evolve(psi0))
        assert float((back - psi0).abs().max()) <= 1e-12


def test_echo_gradient_matches_autograd_to_order_eta():
    """-2 Im(displacement)/eta = dC/dTheta + O(eta) (slope 1); the averaged (+-eta) estimate is
    O(eta^2) (slope 2); 2 Re(displacement)/eta is the gradient w.r.t. the initial momentum
    quadrature (the bias the averaged update cancels)."""
    x, y = _xor()
    for disorder in (0.0, 0.2):
        lat = KerrLattice(disorder=disorder, dt=0.1)
        g_re, g_im = reference_gradient(lat, x, y)
        one = [float((echo_gradient(lat, x, y, e) - g_re).norm() / g_re.norm()) for e in ETAS]
        avg = [float((echo_gradient(lat, x, y, e, averaged=True) - g_re).norm() / g_re.norm()) for e in ETAS]
        assert abs(loglog_slope(ETAS, one) - 1) <= 0.1, one
        assert abs(loglog_slope(ETAS, avg) - 2) <= 0.1, avg
        assert one[1] <= 1e-2
        d = heb_displacement(lat, x, y, 1e-4)
        assert float((2 * d.real.sum(0) / 1e-4 - g_im).norm() / g_im.norm()) <= 1e-3


def test_averaged_update_cancels_the_momentum_bias():
    x, y = _xor()
    lat = KerrLattice(disorder=0.2, dt=0.1)
    g_re, g_im = reference_gradient(lat, x, y)
    rule = HEB(eta=1e-4, kappa=100.0)
    ideal = -rule.learning_rate * g_re / 4  # gradient descent on the batch-mean cost
    plain = rule.update(lat, x, y)
    avg = HEB(eta=1e-4, kappa=100.0, averaged=True).update(lat, x, y)
    bias = plain - ideal
    assert float((bias - 1e-4 / 2 * g_im / 4).norm() / bias.norm()) <= 0.02  # the bias is eta/2 dC/dIm
    assert float((avg - ideal).norm()) <= 1e-3 * float(bias.norm())


def test_heb_trains_xor_to_100_percent():
    """Error injection + echo + decay, nothing else: XOR to 100% (loss < 0.01) on the ideal
    lattice and on one with 20% fabrication disorder (plain and averaged)."""
    for disorder, averaged in ((0.0, False), (0.2, False), (0.2, True)):
        lat = KerrLattice(disorder=disorder, dt=0.1, seed=0)
        hist = train_xor(lat, HEB(eta=1e-3, kappa=1200.0, averaged=averaged), epochs=400, stop_at_100=True)
        assert hist[0]["accuracy"] < 1.0
        assert hist[-1]["accuracy"] == 1.0 and hist[-1]["loss"] < 0.01, (disorder, averaged, hist[-1])
