import pytest

from eqprop.config import ConfigError, TrainConfig, load_config, save_config


def test_yaml_then_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("dataset: mnist\nhidden: [500]\nlr: [0.05, 0.02]\nbeta: 0.5\n")
    cfg = load_config(p, ["beta=0.2", "hidden=[256,128]", "tol=null", "epochs=3", "lr=0.1"])
    assert cfg.dataset == "mnist" and cfg.beta == 0.2 and cfg.hidden == [256, 128]
    assert cfg.tol is None and cfg.epochs == 3 and cfg.lr == [0.1]
    save_config(cfg, tmp_path / "back.yaml")
    assert load_config(tmp_path / "back.yaml") == cfg


def test_every_shipped_config_loads():
    """Training configs map onto TrainConfig; grid configs (compare_*.yaml) onto CompareConfig."""
    from pathlib import Path

    from eqprop.training.compare import CompareConfig, load_compare_config

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert len(configs) > 5
    for c in configs:
        if c.name.startswith("compare_"):
            assert isinstance(load_compare_config(c), CompareConfig)
        else:
            assert isinstance(load_config(c), TrainConfig)


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'betta'.*beta"):
        load_config(None, ["betta=0.1"])
    with pytest.raises(ConfigError, match="'epochs' expects int"):
        load_config(None, ["epochs=many"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["epochs"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
