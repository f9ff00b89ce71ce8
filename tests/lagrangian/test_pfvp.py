"""PFVP (the echo) against autograd through the same integrator, float64."""
import torch

from eqprop.lagrangian import PFVP, HRUSystem, LinearCost, Task, reference_gradients, relative_error
from eqprop.models.hamiltonian import HSSM
from eqprop.rules import RHEL

from glep_problems import chain_task, loglog_slope

BETAS = (1e-1, 1e-2, 1e-3, 1e-4)


def test_central_error_falls_as_beta_squared_one_sided_as_beta():
    system, task, _ = chain_task(dense_cost=True)
    ref, _ = reference_gradients(system, task)
    central = [relative_error(PFVP(beta=b).gradients(system, task), ref) for b in BETAS]
    one_sided = [relative_error(PFVP(beta=b, variant="one-sided").gradients(system, task), ref) for b in BETAS]
    s2, s1 = loglog_slope(BETAS, central), loglog_slope(BETAS, one_sided)
    assert abs(s2 - 2) <= 0.1, (s2, central)
    assert abs(s1 - 1) <= 0.1, (s1, one_sided)
    assert central[-1] <= 1e-7


def test_initial_state_gradients_from_the_echo_end_point():
    """dC/dq_0 = -dp_0/dbeta, dC/dp_0 = +dq_0/dbeta at the echo's end point: <= 1e-6 at beta 1e-3."""
    system, task, _ = chain_task()
    _, _, gq, gp = reference_gradients(system, task, initial_state=True)
    _, r = PFVP(beta=1e-3).estimate(system, task)
    eq = float((r.q0_grad - gq).norm() / gq.norm())
    ep = float((r.p0_grad - gp).norm() / gp.norm())
    assert eq <= 1e-6 and ep <= 1e-6, (eq, ep)
    # and the sign matters: the swapped assignment is far off
    assert float((r.p0_grad + gq).norm() / gq.norm()) > 0.5


def test_learned_mass_needs_the_initial_momentum_term():
    """With a trained mass at a fixed initial velocity, p_0 = M(theta) v_0 depends on theta: the
    bulk term alone is wrong; adding <dp_0/dtheta, dq_0/dbeta> makes it <= 1e-6."""
    system, task, v0 = chain_task(learn_mass=True)
    task.p0 = lambda s: s.mass() * v0
    ref, _ = reference_gradients(system, task)
    without = relative_error(PFVP(beta=1e-3, initial_correction=False).gradients(system, task), ref)
    with_ = relative_error(PFVP(beta=1e-3).gradients(system, task), ref)
    assert without > 0.1, without
    assert with_ <= 1e-6, with_
    # the mass gradient itself is checked too (it carries a kinetic bulk term)
    g = PFVP(beta=1e-3).gradients(system, task)
    assert float((g["m_raw"] - ref["m_raw"]).norm() / ref["m_raw"].norm()) <= 1e-6


def test_damped_variant():
    """Mass-proportional damping through the exp(gamma t)-weighted Lagrangian: the echo runs with
    gain and the estimator is weighted the same way; <= 1e-6 at beta 1e-3. Dropping the weights
    (estimating as if undamped, on the damped trajectory's final state) is wrong."""
    system, task, _ = chain_task(gamma=0.5)
    ref, _ = reference_gradients(system, task)
    err = relative_error(PFVP(beta=1e-3).gradients(system, task), ref)
    assert err <= 1e-6, err
    plain, _, _ = chain_task(gamma=0.0)
    plain.load_state_dict(system.state_dict())
    wrong = relative_error(PFVP(beta=1e-3).gradients(plain, task), ref)
    assert wrong > 0.1, wrong


def _hssm_problem(hru, seed=0):
    torch.manual_seed(seed)
    model = HSSM(3, 4, d_model=6, d_state=5, blocks=1, hru=hru, pool="mean").double()
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(4, 30, 3, generator=g)
    y = torch.randint(0, 4, (4,), generator=g)
    return model, x, y


def test_pfvp_equals_library_rhel_on_an_hru():
    """On a one-block HSSM, the HRU's Hamiltonian parameters: GLEP-PFVP on HRUSystem with the
    readout's error linearised at the free run (what RHEL kicks with) equals eqprop.rules.RHEL
    at equal eps (beta = eps * B * T, RHEL's kick scale) to <= 1e-10, linear and nonlinear."""
    for hru in ("linear", "nonlinear"):
        model, x, y = _hssm_problem(hru)
        eps = 0.05
        rhel, _ = RHEL(eps=eps, chunk=None, parallel=False).estimate(model, x, y)
        blk = model.blocks[0]
        with torch.no_grad():
            h0 = model.encoder(x)
            u = blk.pre(h0)
            coef = blk.hru.coefficients()
            ys, _, _ = blk.hru.trajectory(blk.hru.drive(u, coef), parallel=False)
        with torch.enable_grad():
            ys = ys.requires_grad_(True)
            loss = model.loss(model.readout(blk.post(h0, ys, u, coef).mean(1)), y)
            (gy,) = torch.autograd.grad(loss, ys)
        B, T = x.shape[:2]
        system = HRUSystem(blk.hru)
        g = torch.cat([torch.zeros_like(gy[:, :1]), gy], 1)  # nodes 0..T; no cost at y_0
        task = Task(u, torch.zeros(B, system.dim), torch.zeros(B, system.dim), LinearCost(g))
        ours = PFVP(beta=eps * B * T).gradients(system, task)
        hamiltonian = [n for n in ours if n not in ("hru.C", "hru.D")]  # C, D: output path, outside H
        assert len(hamiltonian) >= 3
        err = relative_error({n: ours[n] for n in hamiltonian}, {n: rhel["blocks.0." + n] for n in hamiltonian})
        assert err <= 1e-10, (hru, err)
        if hru == "nonlinear":  # and both are O(eps^2) away from the exact gradient, not exact
            exact = PFVP(beta=1e-4 * B * T).gradients(system, task)
            assert relative_error({n: ours[n] for n in hamiltonian}, {n: exact[n] for n in hamiltonian}) > 1e-8


def test_pfvp_step_trains_the_chain_like_autograd():
    """PFVP.step writes .grad like backward; 15 SGD steps on the echo gradient lower the cost of
    a target trajectory as much as 15 steps on the autograd gradient (same losses to 1e-6)."""
    losses = {}
    for how in ("pfvp", "autograd"):
        system, task, _ = chain_task(B=2, N=30, dense_cost=True)
        rule = PFVP(beta=1e-3)
        opt = torch.optim.SGD(system.parameters(), lr=0.3)
        hist = []
        for _ in range(15):
            opt.zero_grad()
            if how == "pfvp":
                hist.append(float(rule.step(system, task).loss))
            else:
                ref, loss = reference_gradients(system, task)
                for n, p in system.named_parameters():
                    p.grad = ref[n]
                hist.append(float(loss))
            opt.step()
        losses[how] = hist
    a, b = losses["pfvp"], losses["autograd"]
    assert a[-1] < 0.85 * a[0], a
    assert max(abs(x - y) / y for x, y in zip(a, b)) <= 1e-6
