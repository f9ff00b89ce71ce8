"""The one rule contract: settings, check_model everywhere, relax_dtype, one convergence loop,
and models whose update is the autograd one."""
import dataclasses
import math

import pytest
import torch

from eqprop.dynamics import iterate, relax
from eqprop.models import FFEBM, HSSM, HopfieldBlock, HopfieldMLP
from eqprop.precision import cast_state, relaxation_copy
from eqprop.rules import BPTT, CL, EP, RBP, RHEL, ContinualEP, CpL, FFEBMEP, FFEBMImplicit, HolomorphicEP
from eqprop.rules.base import RelaxationRule
from tests.conftest import make_net

RELAX = ["free_steps", "mode", "tol", "relax_dtype", "eval_steps", "capture"]
FIELDS = {
    EP: RELAX + ["warm_start", "beta", "nudge_steps", "variant"],  # warm_start: the WarmStart callback's
    CpL: RELAX + ["warm_start", "beta", "nudge_steps", "variant"],
    CL: RELAX + ["warm_start", "nudge_steps"],
    BPTT: RELAX + ["backprop_steps"],
    RBP: RELAX + ["adjoint_steps", "adjoint_tol", "resettle"],
    HolomorphicEP: RELAX + ["N", "radius", "nudge_steps", "batched"],
    ContinualEP: RELAX + ["beta", "nudge_steps", "lr"],
    FFEBMEP: RELAX + ["beta", "nudge_steps", "variant"],
    FFEBMImplicit: RELAX + ["beta", "nudge_steps", "variant", "adjoint_steps", "adjoint_tol"],
    RHEL: ["eps", "chunk", "parallel"],
}


@pytest.mark.parametrize("cls", list(FIELDS), ids=lambda c: c.__name__)
def test_each_rule_carries_exactly_the_settings_it_uses(cls):
    assert [f.name for f in dataclasses.fields(cls)] == FIELDS[cls]
    assert issubclass(cls, RelaxationRule) == (cls is not RHEL)


def test_iterate_is_the_convergence_loop():
    # x <- x / 2 + 1 converges to 2; the residual is the last step's change
    state, done, res = iterate(lambda s: [s[0] / 2 + 1], [torch.zeros(3, dtype=torch.float64)], 1000, tol=1e-12)
    assert torch.allclose(state[0], torch.full((3,), 2.0, dtype=torch.float64), atol=2e-12, rtol=0)
    assert res <= 1e-12 and done == math.ceil(math.log2(1 / 1e-12)) + 1  # |change| = 2^(1 - k)
    state, done, res = iterate(lambda s: [s[0] / 2 + 1], [torch.zeros(1)], 5)
    assert done == 5 and math.isnan(res) and float(state[0]) == 2 - 2 ** -4
    _, done, res = iterate(lambda s: [s[0] / 2 + 1], [torch.zeros(1)], 5, measure=True)
    assert done == 5 and res == 2 ** -4
    history = []
    iterate(lambda s: [s[0] / 2 + 1], [torch.zeros(1)], 5, measure=True, history=history)
    assert history == [2.0 ** -k for k in range(5)]  # every change, in order


def _ffebm():
    torch.manual_seed(0)
    return FFEBM([torch.nn.Linear(12, 10), HopfieldBlock([10, 8, 6])], cost="ce").double()


RELAXING = [EP(), CpL(), CL(), BPTT(), RBP(), HolomorphicEP(), ContinualEP()]


@pytest.mark.parametrize("rule", RELAXING, ids=lambda r: r.name)
def test_relaxation_rules_refuse_an_ffebm_by_name_in_estimate_and_infer(rule, tiny_batch):
    x, y = tiny_batch
    chain = _ffebm()
    for call in (rule.estimate, rule.infer, rule.step):
        with pytest.raises(ValueError, match="ffebm"):
            call(chain, x, y)


@pytest.mark.parametrize("rule", [EP(), RBP(), RHEL(), FFEBMEP()], ids=lambda r: r.name)
def test_rules_refuse_models_of_the_wrong_kind(rule, tiny_batch):
    x, y = tiny_batch
    wrong = HopfieldMLP([12, 4]).double() if isinstance(rule, (RHEL, FFEBMEP)) else HSSM(3, 4, d_model=4).double()
    for call in (rule.estimate, rule.infer):
        with pytest.raises(ValueError):
            call(wrong, x, y)


def test_a_users_rule_gets_check_model_before_estimate_and_infer(tiny_batch):
    calls = []

    @dataclasses.dataclass
    class Mine(RelaxationRule):
        name = "mine"

        def check_model(self, model):
            calls.append(type(model).__name__)
            super().check_model(model)

        def estimate(self, model, x, y):
            return {n: torch.zeros_like(p) for n, p in model.named_parameters()}, self.infer(model, x, y)

    x, y = tiny_batch
    Mine().estimate(make_net(), x, y)
    assert calls == ["HopfieldMLP"]  # once per call, not again for the nested infer
    with pytest.raises(ValueError, match="ffebm"):
        Mine().estimate(_ffebm(), x, y)
    assert calls == ["HopfieldMLP", "FFEBM"]


def test_eval_steps_is_the_inference_budget(tiny_batch):
    x, y = tiny_batch
    model = make_net()
    rule = EP(free_steps=3, eval_steps=17)
    assert rule.infer(model, x, y).stats["free_steps"] == 17
    assert rule.infer(model, x, y, steps=5).stats["free_steps"] == 5
    assert EP(free_steps=3).infer(model, x, y).stats["free_steps"] == 3
    with pytest.raises(ValueError, match="eval_steps"):
        EP(eval_steps=0)


# -- relax_dtype --------------------------------------------------------------------------------
def _float32_batch():
    torch.manual_seed(0)
    model = HopfieldMLP([12, 10, 8, 4], activation="sigmoid", gains=[1.5] * 3)
    g = torch.Generator().manual_seed(1)
    return model, torch.rand(6, 12, generator=g), torch.randint(0, 4, (6,), generator=g)


def _bf16_free_state(model, x, steps):
    low = relaxation_copy(model, "bfloat16")
    return cast_state(relax(low, x, steps=steps).state, model)


@pytest.mark.parametrize("rule_cls,kw", [
    (EP, {}), (CL, {}), (RBP, {}), (HolomorphicEP, {"N": 2}), (ContinualEP, {"lr": 0.0}),
], ids=["ep", "cl", "rbp", "hep", "cep"])
def test_relax_dtype_is_honoured_by_every_relaxing_rule(rule_cls, kw):
    model, x, y = _float32_batch()
    rule16 = rule_cls(free_steps=40, relax_dtype="bfloat16", **kw)
    rule32 = rule_cls(free_steps=40, **kw)
    g16, r16 = rule16.estimate(model, x, y)
    g32, r32 = rule32.estimate(model, x, y)
    # the free state is the bf16 copy's equilibrium, cast up (not the float32 one)
    truth = _bf16_free_state(model, x, 40)
    for a, b in zip(r16.state, truth):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert max(float((a - b).abs().max()) for a, b in zip(r16.state, r32.state)) > 1e-4
    # gradients in float32 on the master weights, close to the float32 run but not equal to it
    f16 = torch.cat([g.flatten() for g in g16.values()])
    f32 = torch.cat([g.flatten() for g in g32.values()])
    assert f16.dtype == torch.float32 and not torch.equal(f16, f32)
    assert float(f16 @ f32 / (f16.norm() * f32.norm())) > 0.99
    # inference relaxes the copy too
    inf = rule16.infer(model, x, y)
    torch.testing.assert_close(inf.state[0], truth[0], atol=0, rtol=0)


def test_truncated_bptt_relaxes_its_untracked_sweeps_in_relax_dtype():
    model, x, y = _float32_batch()
    g16 = BPTT(free_steps=40, backprop_steps=5, relax_dtype="bfloat16").estimate(model, x, y)[0]
    # the truth: 35 sweeps of the bf16 copy, then 5 differentiated sweeps on the float32 model
    start = _bf16_free_state(model, x, 35)
    params = [p for p in model.parameters()]
    with torch.enable_grad():
        s = relax(model, x, start, steps=5, track_graph=True).state
        truth = torch.autograd.grad(model.cost(s, y).mean(), params)
    for g, t in zip(g16.values(), truth):
        torch.testing.assert_close(g, t, atol=0, rtol=0)
    g32 = BPTT(free_steps=40, backprop_steps=5).estimate(model, x, y)[0]
    assert any(not torch.equal(a, b) for a, b in zip(g16.values(), g32.values()))


@pytest.mark.parametrize("make", [
    lambda: BPTT(relax_dtype="bfloat16"),  # full BPTT differentiates every sweep
    lambda: HolomorphicEP(N=4, relax_dtype="bfloat16"),  # complex nudges, no 16-bit complex
    lambda: FFEBMEP(relax_dtype="bfloat16"),
    lambda: FFEBMImplicit(relax_dtype="float16"),
    lambda: EP(relax_dtype="int8"),
], ids=["bptt-full", "hep-complex", "ffebm", "ffebm-implicit", "unknown"])
def test_relax_dtype_is_refused_by_name_where_it_cannot_be_honoured(make):
    with pytest.raises(ValueError, match="relax_dtype|relaxation dtype"):
        make()


# -- a model whose update is the autograd one ---------------------------------------------------
class AutogradHopfield(HopfieldMLP):
    """The same energy as HopfieldMLP, with the update obtained by autograd of the energy."""

    layer_update = HopfieldMLP.autograd_layer_update


@pytest.mark.parametrize("output", ["mse", "ce"])
def test_an_autograd_update_model_gives_the_hand_derived_gradients(output, tiny_batch):
    x, y = tiny_batch
    hand = make_net(output=output)
    auto = AutogradHopfield(list(hand.sizes), output=output).double()
    auto.load_state_dict(hand.state_dict())
    conv = dict(free_steps=500, tol=1e-14)
    # BPTT through 7 sweeps from the initial state: the whole (unconverged) trajectory must agree
    for rule in (RBP(**conv), BPTT(free_steps=7), BPTT(free_steps=60), EP(beta=1e-3, nudge_steps=500, **conv)):
        ga, gh = rule.estimate(auto, x, y)[0], rule.estimate(hand, x, y)[0]
        assert sum(float(g.abs().sum()) for g in gh.values()) > 1e-3  # not a vacuous comparison
        for n in gh:
            torch.testing.assert_close(ga[n], gh[n], atol=1e-12, rtol=1e-9, msg=f"{rule.name} {n}")


def test_rbp_refuses_an_update_without_a_graph_instead_of_returning_zeros(tiny_batch):
    class Detached(HopfieldMLP):
        def layer_update(self, i, state, ctx, force=None):
            return super().layer_update(i, state, ctx, force).detach()

    x, y = tiny_batch
    m = Detached([12, 10, 8, 4]).double()
    for rule in (RBP(free_steps=50), BPTT(free_steps=20)):
        with pytest.raises(ValueError, match="differentiable"):
            rule.estimate(m, x, y)
