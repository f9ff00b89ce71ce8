"""Datasets for eqprop: standard-format readers (IDX, CIFAR pickles, image-folder tars), a
registry of named datasets searched under data roots, and tensor-only transforms.

See docs/data.md. Readers live in ``eqprop.data.idx``, ``.cifar``, ``.image_folder``;
transforms in ``eqprop.data.transforms``; downloads in ``eqprop.data.download``.
"""

from .dataset import Dataset, DatasetNotFoundError
from .paths import data_root
from .registry import available_datasets, load_dataset

__all__ = ["Dataset", "DatasetNotFoundError", "available_datasets", "data_root", "load_dataset"]
