"""Only what pyproject.toml cannot say: the repository's configs/ folder ships inside the wheel as
the package ``eqprop.configs`` (so ``eqprop train fashion_mnist_mlp_ep`` works from an installed
wheel), while configs/ stays at the repository root where the docs and scripts name it."""
from setuptools import find_packages, setup

setup(
    packages=[*find_packages("src"), "eqprop.configs"],
    package_dir={"": "src", "eqprop.configs": "configs"},
    package_data={"eqprop": ["py.typed"], "eqprop.configs": ["*.yaml"]},
)
