"""The example rule of docs/own_rule.md works: equal to centered EP, close to RBP, checked."""
import re
from pathlib import Path

import pytest
import torch

import eqprop
from tests.conftest import make_net

DOC = Path(__file__).resolve().parents[2] / "docs" / "own_rule.md"


@pytest.fixture(scope="module")
def ChunkedEP():
    code = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)[0]
    ns: dict = {"__name__": "own_rule_doc"}
    exec(compile(code, str(DOC), "exec"), ns)
    return ns["ChunkedEP"]


def test_the_example_rule_is_centered_ep_with_longer_nudged_phases(ChunkedEP, tiny_batch):
    x, y = tiny_batch
    model = make_net()
    mine = ChunkedEP(beta=0.1, free_steps=50, nudge_steps=4, repeats=3).estimate(model, x, y)[0]
    ref = eqprop.rules.EP(beta=0.1, free_steps=50, nudge_steps=12).estimate(model, x, y)[0]
    for n in ref:
        torch.testing.assert_close(mine[n], ref[n], atol=1e-13, rtol=0)


def test_the_example_rule_matches_rbp_and_gets_checked(ChunkedEP, tiny_batch):
    x, y = tiny_batch
    model = make_net()
    conv = dict(free_steps=2000, tol=1e-14)
    g = ChunkedEP(beta=1e-3, nudge_steps=1000, repeats=2, **conv).estimate(model, x, y)[0]
    ref = eqprop.rules.RBP(**conv).estimate(model, x, y)[0]
    a, b = torch.cat([v.flatten() for v in g.values()]), torch.cat([v.flatten() for v in ref.values()])
    assert float((a - b).norm() / b.norm()) <= 1e-4
    with pytest.raises(ValueError, match="ffebm"):  # check_model runs before the user's estimate
        ChunkedEP().estimate(eqprop.models.FFEBM([eqprop.models.HopfieldBlock([12, 8, 4])]).double(), x, y)
    with pytest.raises(ValueError, match="relax_dtype|relaxation dtype"):
        ChunkedEP(relax_dtype="float8")


def test_the_example_rule_honours_relax_dtype(ChunkedEP):
    torch.manual_seed(0)
    model = eqprop.models.HopfieldMLP([12, 10, 4], activation="sigmoid")
    x, y = torch.rand(5, 12), torch.randint(0, 4, (5,))
    r = ChunkedEP(relax_dtype="bfloat16", free_steps=30).estimate(model, x, y)[1]
    low = eqprop.precision.relaxation_copy(model, "bfloat16")
    truth = eqprop.relax(low, x, steps=30).state
    for a, b in zip(r.state, truth):
        torch.testing.assert_close(a, b.float(), atol=0, rtol=0)
