"""Datasets for eqprop: standard-format readers (IDX, CIFAR pickles, image-folder tars, SVHN .mat,
UEA/UCR .ts), a registry of named datasets searched under data roots, and tensor-only transforms.

See docs/data.md. Readers live in ``eqprop.data.idx``, ``.cifar``, ``.image_folder``, ``.svhn``,
``.timeseries``; transforms in ``eqprop.data.transforms``; downloads in ``eqprop.data.download``;
safe archive extraction in ``eqprop.data.archive``.

Every failure caused by the data is one of: :class:`DatasetNotFoundError` (a FileNotFoundError:
files absent; :class:`DataRootError` for a data root that does not exist) or :class:`DataError`
(a ValueError: :class:`DataFileError` for a corrupt/truncated/malformed file,
:class:`UnsafeArchiveError`, :class:`DownloadError`, and bad in-memory data).
"""

from .dataset import (DataError, DataFileError, DataRootError, Dataset, DatasetNotFoundError, DownloadError,
                      RawPixelWarning, UnsafeArchiveError, check_inputs)
from .paths import data_root, download_root, user_data_dir
from .registry import DatasetStatus, available_datasets, dataset_status, load_dataset, locate_dataset

__all__ = ["DataError", "DataFileError", "DataRootError", "Dataset", "DatasetNotFoundError", "DatasetStatus",
           "DownloadError", "RawPixelWarning", "UnsafeArchiveError", "available_datasets", "check_inputs",
           "data_root", "dataset_status", "download_root", "load_dataset", "locate_dataset",
           "user_data_dir"]
