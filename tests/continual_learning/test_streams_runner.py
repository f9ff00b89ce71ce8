import json
from pathlib import Path

import pytest
import torch

from eqprop.continual import continual_metrics, load_continual_config, make_stream, run_continual
from eqprop.continual.streams import EvalSet, Stream, Task
from eqprop.models.bnn import BinaryConv2d, BinaryConvNet, BinaryMLP
from eqprop.registry import ConfigError


def test_metrics_by_hand():
    R = [[0.9, 0.6, 0.5], [0.1, 0.8, 0.7], [0.1, 0.1, 0.95]]  # R[i][j]: set i after task j
    m = continual_metrics(R)
    assert m["mean_accuracy"] == pytest.approx((0.5 + 0.7 + 0.95) / 3)
    assert m["backward_transfer"] == pytest.approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2)
    assert m["forgetting"] == pytest.approx(((0.9 - 0.5) + (0.8 - 0.7)) / 2)
    one = continual_metrics([[0.3, 0.5, 0.6]])  # one shared test set (a stream)
    assert one["mean_accuracy"] == pytest.approx(0.6) and one["backward_transfer"] is None


def test_binary_layers_forward_and_straight_through():
    torch.manual_seed(0)
    conv = BinaryConv2d(2, 3, 3, padding=1, weight_ste="identity")
    x = torch.randn(4, 2, 5, 5)
    torch.testing.assert_close(conv(x), torch.nn.functional.conv2d(x, conv.weight.sign(), padding=1))
    with torch.no_grad():
        conv.weight.mul_(100)  # |W| > 1: the clipped estimator blocks the gradient, the identity one does not
    conv(x).sum().backward()
    assert conv.weight.grad.abs().sum() > 0
    net = BinaryMLP([6, 5, 3], weight_ste="clipped")
    with torch.no_grad():
        net.linears[0].weight.fill_(2.0)
    net(torch.randn(8, 6)).sum().backward()
    assert net.linears[0].weight.grad.abs().sum() == 0
    cnet = BinaryConvNet((1, 12, 12), 4, channels=(3, 5), track_running_stats=False)
    assert cnet(torch.randn(6, 1, 12, 12)).shape == (6, 4) and len(cnet.binary_parameters()) == 3
    with pytest.raises(ValueError, match="weight_ste"):
        BinaryMLP([4, 2], weight_ste="nope")


def _toy_stream(n_tasks=2):
    g = torch.Generator().manual_seed(0)
    tasks, evals = [], []
    for t in range(n_tasks):  # each task: 4 Gaussian classes at its own centres in 20 dims
        centres = 3 * torch.randn(4, 20, generator=g)
        def draw(n):
            y = torch.randint(0, 4, (n,), generator=g)
            return (centres[y] + torch.randn(n, 20, generator=g)).reshape(n, 1, 4, 5), y
        tasks.append(Task(f"t{t}", *draw(400)))
        evals.append(EvalSet(f"t{t}", *draw(200)))
    return Stream("toy", tasks, evals, list(range(n_tasks)))


def _cfg(tmp_path, *extra):
    return load_continual_config(None, ["model.hidden=[32]", "run.epochs_per_task=2", "run.batch_size=50",
                                        f"run.out={tmp_path}/run", "run.progress=false", *extra])


@pytest.mark.parametrize("method", ["plain", "metaplastic", "ewc", "si", "cascade"])
def test_each_method_learns_a_toy_stream(tmp_path, method):
    r = run_continual(_cfg(tmp_path, f"method.name={method}", "method.fisher_samples=50"), _toy_stream(),
                      log=lambda s: None)
    R = torch.tensor(r["accuracy_matrix"])
    assert R.shape == (2, 2) and R[0, 0] > 0.8 and R[1, 1] > 0.8  # chance: 0.25
    out = tmp_path / "run"
    assert json.loads((out / "metrics.json").read_text())["finished"]
    assert (out / "heatmap.png").stat().st_size > 0 and (out / "curves.png").stat().st_size > 0


def test_resume_after_an_interrupted_task_gives_the_same_run(tmp_path):
    full = run_continual(_cfg(tmp_path / "a", "method.name=ewc", "method.fisher_samples=50"), _toy_stream(3),
                         log=lambda s: None)

    class Stop(Exception):
        pass

    def log(s):
        if "task 3/3" in s:
            raise Stop

    cfg = _cfg(tmp_path / "b", "method.name=ewc", "method.fisher_samples=50")
    with pytest.raises(Stop):
        run_continual(cfg, _toy_stream(3), log=log)
    msgs = []
    resumed = run_continual(cfg, _toy_stream(3), log=msgs.append)
    assert any("resuming" in m and "after task 2/3" in m for m in msgs)
    assert resumed["accuracy_matrix"] == full["accuracy_matrix"]
    with pytest.raises(ValueError, match="different config"):
        run_continual(_cfg(tmp_path / "b", "method.name=ewc", "method.fisher_samples=51"), _toy_stream(3),
                      log=lambda s: None)


def test_config_errors_name_the_fix():
    with pytest.raises(ConfigError, match="valid: plain, metaplastic"):
        load_continual_config(None, ["method.name=magic"])
    with pytest.raises(ConfigError, match="unknown setting.*valid: name, n_tasks"):
        load_continual_config(None, ["stream.tasks=3"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_continual_config(None, ["epochs=3"])


@pytest.mark.requires_data("mnist")
def test_permuted_mnist_stream_and_cli(tmp_path):
    s = make_stream("permuted-mnist", n_tasks=3, train_subset=50, test_subset=40)
    assert len(s.tasks) == 3 and s.tasks[0].x.shape == (50, 1, 28, 28)
    # the same images, pixels permuted: sorted pixel values agree, positions do not
    a, b = s.tasks[0].x.reshape(50, -1), s.tasks[1].x.reshape(50, -1)
    torch.testing.assert_close(a.sort(1).values, b.sort(1).values)
    assert not torch.equal(a, b)
    from eqprop.cli import main

    rc = main(["continual", str(Path(__file__).resolve().parents[2] / "configs" / "continual" / "mnist_fashion_meta.yaml"), "stream.train_subset=600",
               "stream.test_subset=300", "model.hidden=[64]", "run.epochs_per_task=1", f"run.out={tmp_path}/cli",
               "run.progress=false"])
    assert rc == 0
    r = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert r["eval_sets"] == ["mnist", "fashion-mnist"] and r["accuracy_matrix"][0][0] > 0.5


def test_bad_metaplasticity_is_refused_before_any_data_is_read():
    with pytest.raises(ConfigError, match="method.m must be finite and >= 0"):
        load_continual_config(None, ["method.m=[-1]"])
