"""Sectioned configs: each section checked against the component it names; defaults from there."""
from pathlib import Path

import pytest
import yaml

from eqprop.config import Config, ConfigError, convert_flat, load_config, save_config
from eqprop.rules import EP

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_yaml_then_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {name: mnist}\nmodel: {name: hopfield-mlp, hidden: [500]}\n"
                 "rule: {name: ep, beta: 0.5}\noptim: {name: sgd, lr: [0.05, 0.02]}\n")
    cfg = load_config(p, ["rule.beta=0.2", "model.hidden=[256,128]", "rule.tol=null", "run.epochs=3", "optim.lr=0.1"])
    assert cfg.data["name"] == "mnist" and cfg.rule["beta"] == 0.2 and cfg.model["hidden"] == [256, 128]
    assert cfg.rule["tol"] is None and cfg.run["epochs"] == 3 and cfg.optim["lr"] == [0.1]
    save_config(cfg, tmp_path / "back.yaml")
    assert load_config(tmp_path / "back.yaml") == cfg


def test_defaults_come_from_the_component():
    """An unset rule setting is the rule class's default, not a second copy in the config layer."""
    cfg = load_config(None, ["rule.name=ep"])
    defaults = EP()
    for key in ("beta", "free_steps", "nudge_steps", "variant", "mode"):
        assert cfg.rule[key] == getattr(defaults, key), key
    import torch

    assert cfg.optim["momentum"] == torch.optim.SGD([torch.zeros(1, requires_grad=True)]).defaults["momentum"]


def test_changing_a_component_starts_its_section_afresh():
    cfg = load_config(CONFIGS / "mnist_mlp_ep.yaml", ["rule.name=rbp"])
    assert cfg.rule["name"] == "rbp" and "beta" not in cfg.rule


def test_every_shipped_config_loads():
    from eqprop.training.compare import CompareConfig, load_compare_config
    from eqprop.training.tune import TuneConfig, load_tune_config

    configs = sorted(CONFIGS.glob("*.yaml"))
    assert len(configs) > 5
    for c in configs:
        if c.name.startswith("compare_"):
            assert isinstance(load_compare_config(c), CompareConfig)
        elif c.name.startswith("tune_"):
            assert isinstance(load_tune_config(c), TuneConfig)
        else:
            assert isinstance(load_config(c), Config)


def test_every_shipped_ssl_and_continual_config_loads():
    from eqprop.continual.config import load_continual_config
    from eqprop.ssl.trainer import load_ssl_config

    ssl, continual = sorted((CONFIGS / "ssl").glob("*.yaml")), sorted((CONFIGS / "continual").glob("*.yaml"))
    assert len(ssl) >= 5 and len(continual) >= 2
    for c in ssl:
        load_ssl_config(c)
    for c in continual:
        load_continual_config(c)


def test_errors_name_the_section_component_and_valid_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) 'betta' in section 'rule' for rule 'ep-centered'; "
                                          r"valid settings: .*beta"):
        load_config(None, ["rule.betta=0.1"])
    with pytest.raises(ConfigError, match="did you mean rule.beta=0.1"):
        load_config(None, ["beta=0.1"])
    with pytest.raises(ConfigError, match="run.epochs expects an integer"):
        load_config(None, ["run.epochs=many"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["run.epochs"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="valid models: hopfield-mlp"):
        load_config(None, ["model.name=resnet"])
    with pytest.raises(ConfigError, match=r"'momentun' in section 'optim'.*momentum"):
        load_config(None, ["optim.momentun=0.9"])


def test_a_flat_config_says_how_to_convert_and_converts_to_the_same_meaning(tmp_path):
    flat = {"dataset": "mnist", "hidden": [64], "rule": "bptt", "beta": 0.3, "nudge_steps": 6, "lr": [0.1, 0.05]}
    p = tmp_path / "old.yaml"
    p.write_text(yaml.safe_dump(flat))
    with pytest.raises(ConfigError, match=r"flat config of eqprop 0.1.*dataset -> data.name.*eqprop config convert"):
        load_config(p)
    new = convert_flat(flat)
    assert new["rule"] == {"name": "bptt", "free_steps": 20, "mode": "async", "backprop_steps": 6}  # the old truncation
    assert new["optim"]["momentum"] == 0.9 and new["data"]["name"] == "mnist"  # the old defaults, written out
    (tmp_path / "new.yaml").write_text(yaml.safe_dump(new))
    cfg = load_config(tmp_path / "new.yaml")
    assert cfg.model["hidden"] == [64] and cfg.optim["lr"] == [0.1, 0.05]
