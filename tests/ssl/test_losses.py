import pytest
import torch

from eqprop.ssl import (CorrelationPredictor, MLPPredictor, byol_loss, cosine_tau, ema_update, euclidean_loss,
                        effective_rank, isoloss, isoloss_sqrt, make_target, simsiam_loss)

D = torch.float64


def _psd(d, seed):
    a = torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=D)
    lam = torch.linspace(0.05, 1.0, d, dtype=D)
    q, _ = torch.linalg.qr(a)
    return q @ torch.diag(lam) @ q.T, q, lam


def test_byol_and_simsiam_values_and_stop_gradient():
    g = torch.Generator().manual_seed(0)
    p = torch.randn(8, 5, generator=g, dtype=D, requires_grad=True)
    zt = torch.randn(8, 5, generator=g, dtype=D, requires_grad=True)
    cos = (p * zt).sum(1) / (p.norm(dim=1) * zt.norm(dim=1))
    assert torch.allclose(byol_loss(p, zt), 2 - 2 * cos.mean())
    assert torch.allclose(simsiam_loss(p, zt), -cos.mean())
    byol_loss(p, zt).backward()
    assert zt.grad is None and p.grad is not None


@pytest.mark.parametrize("base", ["byol", "simsiam", "euclidean"])
def test_isoloss_gradient_is_the_loss_gradient_at_p(base):
    # the paper's property: dL_iso/dz = dL/dp, i.e. W_p^T (the per-mode eigenvalue) removed from dL/dz
    Wp, _, _ = _psd(6, 1)
    g = torch.Generator().manual_seed(2)
    z = torch.randn(10, 6, generator=g, dtype=D, requires_grad=True)
    zt = torch.randn(10, 6, generator=g, dtype=D)
    fn = {"byol": byol_loss, "simsiam": simsiam_loss, "euclidean": euclidean_loss}[base]
    p = z @ Wp
    (gz_iso,) = torch.autograd.grad(isoloss(p, z, zt, base), z)
    pl = (z @ Wp).detach().requires_grad_(True)
    (gp,) = torch.autograd.grad(fn(pl, zt), pl)
    assert torch.allclose(gz_iso, gp, rtol=1e-12, atol=1e-14)
    (gz,) = torch.autograd.grad(fn(z @ Wp, zt), z)  # the standard loss: dL/dz = dL/dp W_p^T
    assert torch.allclose(gz, gp @ Wp.T, rtol=1e-12, atol=1e-14)
    assert not torch.allclose(gz, gz_iso, rtol=1e-3)


def test_isoloss_matches_the_official_sqrt_form():
    Wp, q, lam = _psd(6, 3)
    Wsqrt = q @ torch.diag(lam.sqrt()) @ q.T
    g = torch.Generator().manual_seed(4)
    z = torch.randn(12, 6, generator=g, dtype=D, requires_grad=True)
    zt = torch.randn(12, 6, generator=g, dtype=D)
    (a,) = torch.autograd.grad(isoloss(z @ Wp, z, zt, "byol"), z)
    (b,) = torch.autograd.grad(isoloss_sqrt(z @ Wp, z @ Wsqrt, z, zt), z)
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)


def test_directpred_is_U_diag_s_alpha_UT_of_the_ema_correlation():
    g = torch.Generator().manual_seed(5)
    pred = CorrelationPredictor(4, "directpred", alpha=0.5, tau=0.7, eps=0.01).double()
    batches = [torch.randn(32, 4, generator=g, dtype=D) * torch.tensor([3.0, 1.0, 0.5, 0.1], dtype=D)
               for _ in range(3)]
    for z in batches:
        pred.update(z)
    C = sum(0.3 * 0.7 ** (2 - i) * z.T @ z / 32 for i, z in enumerate(batches))  # C_0 = 0
    assert torch.allclose(pred.C, C, rtol=1e-12)
    lam, U = torch.linalg.eigh(C)
    s = lam.clamp_min(0) / lam.max() + 0.01
    expected = U @ torch.diag(s ** 0.5) @ U.T
    assert torch.allclose(pred.matrix(), expected, rtol=1e-10, atol=1e-12)
    # same eigenvectors as C, eigenvalues s^alpha; the prediction is z W_p
    assert torch.allclose(pred.matrix() @ U, U * s ** 0.5, atol=1e-10)
    z = batches[0]
    assert torch.allclose(pred(z), z @ expected, atol=1e-10)
    copy = CorrelationPredictor(4, "directcopy", alpha=1.0, tau=0.7, eps=0.2).double()
    copy.C.copy_(C)
    assert torch.allclose(copy.matrix(), C / lam.max() + 0.2 * torch.eye(4, dtype=D), atol=1e-12)


def test_predictor_settings_are_checked():
    with pytest.raises(ValueError, match="alpha = 1"):
        CorrelationPredictor(4, "directcopy", alpha=0.5)
    with pytest.raises(ValueError, match="tau"):
        CorrelationPredictor(4, tau=1.0)


def test_ema_update_and_schedule():
    torch.manual_seed(0)
    online = MLPPredictor(3, 5)
    target = make_target(online)
    before = [p.clone() for p in target.parameters()]
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    online.net[1].running_mean.fill_(0.7)
    ema_update(target, online, 0.9)
    for b, pt, po in zip(before, target.parameters(), online.parameters()):
        assert torch.allclose(pt, 0.9 * b + 0.1 * po)
        assert not pt.requires_grad
    assert torch.equal(target.net[1].running_mean, online.net[1].running_mean)
    assert cosine_tau(0, 100, 0.99, 1.0) == pytest.approx(0.99)
    assert cosine_tau(50, 100, 0.99, 1.0) == pytest.approx(0.995)
    assert cosine_tau(100, 100, 0.99, 1.0) == pytest.approx(1.0)


def test_effective_rank_detects_collapse():
    g = torch.Generator().manual_seed(6)
    iso = torch.randn(20000, 8, generator=g, dtype=D)
    assert effective_rank(iso) == pytest.approx(8, rel=0.01)
    line = torch.randn(500, 1, generator=g, dtype=D) * torch.ones(1, 8, dtype=D)
    assert effective_rank(line) == pytest.approx(1, abs=1e-6)
