"""The feedforward reference rule: autograd of the cross-entropy, refused on energy-based models."""
import pytest
import torch
import torch.nn.functional as F

import eqprop
from eqprop.models.bnn import BinaryMLP
from eqprop.rules import Backprop


def test_bp_is_the_cross_entropy_gradient_of_a_linear_model():
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3).double()
    x, y = torch.randn(7, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    grads, res = Backprop().estimate(model, x, y)
    p = torch.softmax(model(x), -1) - F.one_hot(y, 3)  # d CE / d logits, per sample
    torch.testing.assert_close(grads["weight"], p.T.detach() @ x / 7)
    torch.testing.assert_close(grads["bias"], p.detach().mean(0))
    assert float(res.loss) == pytest.approx(float(F.cross_entropy(model(x), y).detach()))


def test_bp_refuses_energy_models_with_the_fix():
    with pytest.raises(ValueError, match="'bptt' or 'rbp'"):
        Backprop().check_model(eqprop.models.HopfieldMLP([4, 3, 2]))


@pytest.mark.requires_data("mnist")
def test_bnn_trains_by_bp_from_a_config(tmp_path):
    from eqprop.config import load_config

    cfg = load_config(None, ["data.name=mnist", "data.train_subset=3000", "data.test_subset=1000",
                             "model.name=bnn-mlp", "model.hidden=[256]", "rule.name=bp", "optim.name=adam",
                             "optim.lr=0.005", "run.epochs=2", "run.batch_size=100", "run.progress=false",
                             f"run.out={tmp_path}"])
    trainer = eqprop.Trainer.from_config(cfg)
    assert isinstance(trainer.model, BinaryMLP)
    assert trainer.fit()["test_acc"] >= 0.8  # chance is 0.1
