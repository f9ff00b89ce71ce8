"""The configs that ship with eqprop, addressed by name: ``eqprop train fashion_mnist_mlp_ep``.

A config argument that is an existing file is used as it is. A bare name (no such file) is
looked up as ``NAME.yaml`` in ``./configs/`` (a checkout's working folder), then among the configs
packaged in the wheel (``eqprop/configs/``, the repository's ``configs/`` folder shipped as package
data), then in the repository's ``configs/`` beside ``src/`` (running from a source checkout).
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def config_dirs() -> list[Path]:
    dirs = [Path("configs")]
    packaged = resources.files("eqprop") / "configs"
    if packaged.is_dir():
        dirs.append(Path(str(packaged)))
    source = Path(__file__).resolve().parents[2] / "configs"  # src/eqprop/packaged.py -> repo/configs
    dirs.append(source)
    return [d for d in dirs if d.is_dir()]


def packaged_configs() -> list[str]:
    """Names of the configs found (without .yaml), sorted."""
    return sorted({p.stem for d in config_dirs() for p in d.glob("*.yaml")})


def find_config(name: str) -> str:
    """The path of config ``name``: a file as given, else a packaged/checkout config of that name."""
    if Path(name).exists() or "/" in name or "\\" in name:
        return name
    stem = name[:-5] if name.endswith(".yaml") else name[:-4] if name.endswith(".yml") else name
    for d in config_dirs():
        path = d / f"{stem}.yaml"
        if path.is_file():
            return str(path)
    from .registry import ConfigError

    raise ConfigError(f"no config file {name!r} and no packaged config of that name; packaged configs: "
                      f"{', '.join(packaged_configs()) or 'none found'}")
