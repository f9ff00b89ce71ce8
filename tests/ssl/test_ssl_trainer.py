import pytest

from eqprop.registry import ConfigError
from eqprop.ssl.trainer import SSLRun, load_ssl_config, run_ssl

TINY = ["data.train_subset=192", "data.test_subset=64", "model.widths=[8,16]", "model.proj_hidden=32",
        "model.proj_dim=16", "method.pred_hidden=32", "run.batch_size=64", "run.log_every=0", "run.probe_steps=20"]


@pytest.mark.requires_data("cifar10")
@pytest.mark.parametrize("name", ["byol", "isoloss_noema"])
def test_resume_repeats_the_uninterrupted_run(tmp_path, name):
    cfg = f"configs/ssl/cifar10_{name}.yaml"
    straight = run_ssl(cfg, TINY + ["run.epochs=2", f"run.out={tmp_path / 'a'}"], log=lambda m: None)
    args = TINY + ["run.epochs=2", f"run.out={tmp_path / 'b'}"]
    SSLRun(load_ssl_config(cfg, args)).fit(log=lambda m: None, stop_after=1)  # interrupted after epoch 1
    assert len((tmp_path / "b" / "history.jsonl").read_text().splitlines()) == 1
    resumed = run_ssl(cfg, args, log=lambda m: None)
    with pytest.raises(ConfigError, match="different config"):
        run_ssl(cfg, args[:-2] + ["run.epochs=3", f"run.out={tmp_path / 'b'}"], log=lambda m: None)
    a, b = straight["final"], resumed["final"]
    assert a["loss"] == b["loss"] and a["corr_eigenvalues"] == b["corr_eigenvalues"]
    assert a["probe_test_acc"] == b["probe_test_acc"]
    assert a["effective_rank_z"] > 1.5  # not collapsed


def test_bad_configs_are_named():
    with pytest.raises(ConfigError, match="unknown key"):
        load_ssl_config(None, ["method.alpah=0.5"])
    with pytest.raises(ConfigError, match="directpred or directcopy"):
        load_ssl_config(None, ["method.iso=true"])
    with pytest.raises(ConfigError, match="method.predictor"):
        load_ssl_config(None, ["method.predictor=mlp"])
    with pytest.raises(ConfigError, match="section"):
        load_ssl_config(None, ["epochs=3"])
    with pytest.raises(ConfigError, match="number"):
        load_ssl_config(None, ["optim.lr=fast"])
