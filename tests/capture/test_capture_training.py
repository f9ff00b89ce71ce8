"""A short real training with ``rule.capture: true`` (config -> Trainer) equals the same run
uncaptured: a small DCHN on a Fashion-MNIST subset (installed by the setup), float64, so the
trainer's batches, the evaluation's partial last batch (a new key), the evaluation (``infer``) and the
in-place optimizer steps between captured phases are all exercised."""
import torch

from eqprop import capture
from eqprop.config import load_config
from eqprop.training import Trainer


def _run(tmp_path, graph: bool):
    capture.clear()
    cfg = load_config("configs/fashion_mnist_dchn_ep.yaml", [
        "data.train_subset=300", "data.test_subset=100", "model.channels=[4,8]", "rule.free_steps=6",
        "rule.nudge_steps=3", "rule.relax_dtype=null", f"rule.capture={str(graph).lower()}", "run.epochs=2",
        "run.batch_size=64", "run.dtype=float64", "run.device=cpu", "run.progress=false", "run.eval_batch_size=64",
        f"run.out={tmp_path}/{'graph' if graph else 'eager'}"])
    t = Trainer.from_config(cfg)
    summary = t.fit()
    return summary, {k: v.detach().clone() for k, v in t.model.state_dict().items()}, t


def test_captured_training_equals_eager(tmp_path):
    s_ref, w_ref, _ = _run(tmp_path, False)
    s_cap, w_cap, t = _run(tmp_path, True)
    for k in w_ref:
        torch.testing.assert_close(w_cap[k], w_ref[k], rtol=0, atol=1e-12)
    assert s_cap["test_acc"] == s_ref["test_acc"] and s_cap["train_acc"] == s_ref["train_acc"]
    # training: full batches of 64 only (the trainer drops the 44 left): a free and a nudged phase
    # (+beta and -beta share one); evaluation: the free phase at 64 is the training's key, the
    # last 100 - 64 = 36 test samples a third
    assert capture.captured_phases(t.model) == 3
    assert s_ref["test_acc"] is not None
