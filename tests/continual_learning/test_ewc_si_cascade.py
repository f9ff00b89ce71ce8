import pytest
import torch

from eqprop.continual import EWC, CascadeAdam, SynapticIntelligence, diagonal_fisher


class _Softmax(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x):
        return x @ self.w.T


def test_fisher_is_the_mean_squared_gradient_of_the_log_likelihood():
    # linear softmax model: d log p(y | x) / d W_cj = (1[c = y] - p_c) x_j, so the empirical Fisher is
    # F_cj = mean_n ((1[c = y_n] - p_nc) x_nj)^2 (analytic, float64)
    torch.manual_seed(0)
    W = torch.randn(3, 4, dtype=torch.float64)
    x, y = torch.randn(25, 4, dtype=torch.float64), torch.randint(0, 3, (25,))
    model = _Softmax(W.clone())
    (F,) = diagonal_fisher(model, [model.w], x, y, batch_size=7)
    p = torch.softmax(x @ W.T, 1)
    e = torch.nn.functional.one_hot(y, 3).double()
    analytic = (((e - p)[:, :, None] * x[:, None, :]) ** 2).mean(0)
    torch.testing.assert_close(F, analytic, rtol=1e-12, atol=1e-15)


def test_ewc_penalty_gradient_and_online_accumulation():
    torch.manual_seed(1)
    model = _Softmax(torch.randn(3, 4, dtype=torch.float64))
    x, y = torch.randn(20, 4, dtype=torch.float64), torch.randint(0, 3, (20,))
    ewc = EWC([model.w], lam=7.0, gamma=0.5, samples=20)
    ewc.after_task(model, x, y)
    F1 = ewc.fisher[0].clone()
    with torch.no_grad():
        model.w.add_(0.3 * torch.randn_like(model.w))
    w = model.w.detach().clone().requires_grad_(True)
    pen = 0.5 * 7.0 * (F1 * (w - ewc.anchor[0]) ** 2).sum()
    pen.backward()
    model.w.grad = None
    ewc.add_penalty_grad()
    torch.testing.assert_close(model.w.grad, w.grad, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(ewc.penalty(), pen.detach())
    ewc.after_task(model, x, y)  # online: F* = 0.5 F1 + F2, anchor moves
    (F2,) = diagonal_fisher(model, [model.w], x, y)
    torch.testing.assert_close(ewc.fisher[0], 0.5 * F1 + F2, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(ewc.anchor[0], model.w.detach())


def _quadratic_task(p, a, c, lr, steps, si):
    opt = torch.optim.SGD([p], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * a * (p - c) ** 2).sum().backward()
        si.before_step()
        si.add_penalty_grad()
        opt.step()
        si.after_step()


def test_si_importance_is_the_path_integral_on_a_quadratic():
    # L = sum_i a_i (theta_i - c_i)^2 / 2 under gradient descent: d_t = r^t d_0, r = 1 - lr a, so
    # omega = sum_t lr g_t^2 = lr a^2 d_0^2 (1 - r^(2K)) / (1 - r^2), and Omega = omega / (Delta^2 + xi)
    a = torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=torch.float64)
    c = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    theta0 = torch.zeros(4, dtype=torch.float64)
    lr, K, xi = 0.05, 40, 0.1
    p = torch.nn.Parameter(theta0.clone())
    si = SynapticIntelligence([p], c=0.0, xi=xi)
    _quadratic_task(p, a, c, lr, K, si)
    d0, r = theta0 - c, 1 - lr * a
    omega = lr * a ** 2 * d0 ** 2 * (1 - r ** (2 * K)) / (1 - r ** 2)
    torch.testing.assert_close(si.omega[0], omega, rtol=1e-12, atol=1e-14)
    delta = d0 * (r ** K - 1)
    si.after_task()
    torch.testing.assert_close(si.importance[0], omega / (delta ** 2 + xi), rtol=1e-12, atol=1e-14)
    # small steps: the sum becomes the integral - int g dtheta = L(theta_0) - L(theta_end)
    p2 = torch.nn.Parameter(theta0.clone())
    si2 = SynapticIntelligence([p2], c=0.0)
    _quadratic_task(p2, a, c, 1e-4, 4000, si2)
    drop = 0.5 * a * (d0 ** 2 - (p2.detach() - c) ** 2)
    torch.testing.assert_close(si2.omega[0], drop, rtol=5e-4, atol=0)


def test_si_path_integral_uses_the_task_gradient_only():
    a, c = torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([1.0, 1.0], dtype=torch.float64)
    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    si = SynapticIntelligence([p], c=0.5, xi=0.1)
    _quadratic_task(p, a, c, 0.1, 20, si)
    si.after_task()
    manual = torch.zeros(2, dtype=torch.float64)
    c2 = torch.tensor([-1.0, 2.0], dtype=torch.float64)
    opt = torch.optim.SGD([p], lr=0.1)
    for _ in range(10):  # task 2 with the penalty on: omega sums - g_task * dtheta
        opt.zero_grad()
        (0.5 * a * (p - c2) ** 2).sum().backward()
        g_task, before = p.grad.clone(), p.detach().clone()
        si.before_step()
        si.add_penalty_grad()
        torch.testing.assert_close(p.grad - g_task, 2 * 0.5 * si.importance[0] * (before - si.anchor[0]))
        opt.step()
        si.after_step()
        manual -= g_task * (p.detach() - before)
    torch.testing.assert_close(si.omega[0], manual, rtol=1e-13, atol=1e-15)


def test_cascade_step_by_hand_and_conservation():
    C, g = [1.0, 2.0, 4.0], [0.1, 0.05, 0.02]
    w = torch.nn.Parameter(torch.tensor([[1.0, -1.0]], dtype=torch.float64))
    opt = CascadeAdam([w], lr=0.1, eps=0.0, areas=C, couplings=g)
    w.grad = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    opt.step()  # beakers start at the weight: only the leak moves u_3, Adam moves u_1 by -0.1 sign(grad)
    torch.testing.assert_close(w.detach(), torch.tensor([[0.9, -0.9]], dtype=torch.float64))
    u = opt.state[w]["beakers"]
    torch.testing.assert_close(u[0], torch.tensor([[1.0, -1.0]], dtype=torch.float64))
    torch.testing.assert_close(u[1], torch.tensor([[1.0 - 0.02 / 4, -1.0 + 0.02 / 4]], dtype=torch.float64))
    w.grad = torch.zeros_like(w)
    for group in opt.param_groups:
        group["lr"] = 0.0
    opt.step()  # second step by hand (first weight): u = (0.9, 1.0, 0.995)
    u1, u2, u3 = 0.9, 1.0, 0.995
    exp = [u1 + 0.1 * (u2 - u1) / 1, u2 + (0.1 * (u1 - u2) + 0.05 * (u3 - u2)) / 2,
           u3 + (0.05 * (u2 - u3) + 0.02 * (0 - u3)) / 4]
    got = [w.detach()[0, 0].item(), opt.state[w]["beakers"][0][0, 0].item(), opt.state[w]["beakers"][1][0, 0].item()]
    assert got == pytest.approx(exp, abs=1e-15)
    # without the leak sum_k C_k u_k is conserved and the chain settles at its weighted mean
    v = torch.nn.Parameter(torch.tensor([[2.0]], dtype=torch.float64))
    opt2 = CascadeAdam([v], lr=0.0, areas=C, couplings=[0.1, 0.05, 0.0])
    opt2.state[v]  # noqa: B018
    v.grad = torch.zeros_like(v)
    opt2.step()
    opt2.state[v]["beakers"].zero_()  # a fresh change of u_1 the deeper beakers have not seen
    mass = 2.0 * C[0]
    for _ in range(3000):
        opt2.step()
    u = [v.item(), *opt2.state[v]["beakers"].flatten().tolist()]
    assert sum(ci * ui for ci, ui in zip(C, u)) == pytest.approx(mass, abs=1e-12)
    assert u == pytest.approx([mass / sum(C)] * 3, abs=1e-6)
    with pytest.raises(ValueError, match="unstable"):
        CascadeAdam([v], areas=[1.0, 1.0], couplings=[0.7, 0.5])
