"""Packaging: configs addressed by name from anywhere, and the built wheel in a fresh venv."""
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eqprop.cli import main
from eqprop.packaged import find_config, packaged_configs
from eqprop.registry import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_a_bare_name_is_a_shipped_config(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # outside the repository: no ./configs
    path = Path(find_config("fashion_mnist_mlp_ep"))
    assert path.name == "fashion_mnist_mlp_ep.yaml" and path.is_file()
    assert find_config("fashion_mnist_mlp_ep.yaml") == str(path)
    assert "mnist_mlp_ep" in packaged_configs()
    assert main(["config", "show", "fashion_mnist_mlp_ep"]) == 0
    assert "name: fashion-mnist" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="packaged configs: .*fashion_mnist_mlp_ep"):
        find_config("fashion_mnist_mlp_epp")
    (tmp_path / "mine.yaml").write_text("data: {name: mnist}\n")
    assert find_config("mine.yaml") == "mine.yaml"  # an existing file wins


def test_every_shipped_config_is_in_the_package_data():
    setup = (ROOT / "setup.py").read_text()
    assert '"eqprop.configs": "configs"' in setup and '"*.yaml"' in setup and "py.typed" in setup
    assert (ROOT / "src" / "eqprop" / "py.typed").exists()


@pytest.mark.slow
@pytest.mark.requires_data("fashion-mnist")
@pytest.mark.skipif(importlib.util.find_spec("build") is None, reason="needs the build package (pip install 'eqprop[dev]')")
def test_the_wheel_installs_and_trains_in_a_fresh_venv(tmp_path):
    """scripts/check_wheel.sh: build, install into a fresh venv, `eqprop --help`, one epoch by config name."""
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    r = subprocess.run(["bash", str(ROOT / "scripts" / "check_wheel.sh"), sys.executable], cwd=ROOT,
                       capture_output=True, text=True, timeout=900, check=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "wheel check passed" in r.stdout and "eqprop 0.1.0" in r.stdout
