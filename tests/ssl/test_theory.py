import pytest
import torch

from eqprop.ssl.theory import analytic, logistic_rates, simulate

SIGMA, ETA, STEPS = 0.3, 0.02, 1500


@pytest.fixture(scope="module")
def W0():
    return torch.randn(10, 15, generator=torch.Generator().manual_seed(0), dtype=torch.float64) / 8


@pytest.fixture(scope="module")
def runs(W0):
    out = {}
    for loss in ("standard", "iso"):
        g = torch.Generator().manual_seed(1)
        out[loss] = simulate(W0, STEPS, ETA, SIGMA, 1.0, loss, n_samples=2048, generator=g)
    return out


@pytest.mark.parametrize("loss", ["standard", "iso"])
def test_simulated_modes_match_the_analytic_solution(runs, loss):
    lam = runs[loss]
    pred = analytic(lam[0], STEPS, ETA, SIGMA, 1.0, loss)
    rel = ((lam - pred).abs() / pred).max()
    assert rel < 0.05, f"largest relative deviation {float(rel):.3f}"
    k = 1 + SIGMA ** 2
    assert torch.allclose(lam[-1], torch.full((10,), 1 / k, dtype=torch.float64), rtol=0.05)  # fixed point 1/k


def test_exact_gradient_matches_for_alpha_half(W0):
    lam = simulate(W0, 600, ETA, SIGMA, 0.5, "standard", exact=True)
    pred = analytic(lam[0], 600, ETA, SIGMA, 0.5, "standard")
    assert ((lam - pred).abs() / pred).max() < 0.05


def test_isoloss_modes_share_one_rate_standard_modes_do_not(runs):
    iso = logistic_rates(runs["iso"], SIGMA, 1.0) / (2 * ETA)
    std = logistic_rates(runs["standard"], SIGMA, 1.0) / (2 * ETA)
    assert not bool(torch.isnan(iso).any())
    assert torch.allclose(iso, torch.ones_like(iso), rtol=0.05), iso  # every mode: rate 2 eta alpha
    assert std.max() / std.min() > 3  # standard loss: rates spread with the eigenvalue
    assert float(std.min()) < 0.3


def test_analytic_rejects_zero_modes():
    with pytest.raises(ValueError, match="> 0"):
        analytic(torch.tensor([0.0, 0.5]), 10, ETA)
