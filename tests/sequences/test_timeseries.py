"""The .ts reader, the named time-series sets and sequential MNIST."""
import gzip

import pytest
import torch

from eqprop.data import Dataset, load_dataset
from eqprop.data.timeseries import (TsFormatError, pad_sequences, psmnist_permutation, read_ts,
                                    sequential_mnist)

HEADER = """# a comment
@problemName Toy
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
"""


def _write(tmp_path, text, name="toy.ts", gz=False):
    path = tmp_path / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_reader_unequal_lengths_missing_values_and_labels(tmp_path, gz):
    text = HEADER + "1,2,3:4,5,6:up\n7,?:8,9:down\n\n1:2:up\n"
    ts = read_ts(_write(tmp_path, text, gz=gz))
    assert ts.x.shape == (3, 3, 2) and ts.x.dtype == torch.float32
    assert ts.lengths.tolist() == [3, 2, 1] and ts.labels.tolist() == [0, 1, 0] and ts.classes == ["up", "down"]
    assert ts.x[0].tolist() == [[1, 4], [2, 5], [3, 6]]
    assert ts.x[1, 0].tolist() == [7, 8] and torch.isnan(ts.x[1, 1, 0]) and ts.x[1, 1, 1] == 9
    assert torch.isnan(ts.x[1, 2]).all() and torch.isnan(ts.x[2, 1:]).all()  # padding after the end


@pytest.mark.parametrize("header,message", [
    ("@problemName T\n@bogus 3\n@data\n1:a\n", "unknown header tag @bogus"),
    ("@problemName T\n@classLabel true a\n", "no @data line"),
    ("@problemName T\n@classLabel true a\n1,2:a\n", "data before the @data line"),
    ("@classLabel true a\n@data\n", "no series after @data"),
    ("@dimensions two\n@classLabel true a\n@data\n1:a\n", "@dimensions must be a positive integer"),
    ("@classLabel true\n@data\n1:a\n", "must list the class labels"),
    ("@equalLength maybe\n@data\n1\n", "must be true or false"),
    ("@timeStamps true\n@classLabel true a\n@data\n(0,1):a\n", "timeStamps true"),
    ("@classLabel true a b\n@data\n1,2:c\n", "class label 'c' is not one of"),
    ("@dimensions 2\n@classLabel true a\n@data\n1,2:a\n", "1 dimensions but the file has 2"),
    ("@classLabel true a\n@data\n1,2:1,2,3:a\n", "different lengths"),
    ("@equalLength true\n@classLabel true a\n@data\n1,2:a\n1:a\n", "@equalLength true but"),
    ("@seriesLength 5\n@classLabel true a\n@data\n1,2:a\n", "@seriesLength 5 but the series have length 2"),
    ("1,2:a\n@data\n", "data before the @data line"),
    ("@classLabel true a\n@data\n1,x:a\n", "not a number"),
])
def test_malformed_files_name_the_problem(tmp_path, header, message):
    with pytest.raises(TsFormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_ts(_write(tmp_path, header))


def test_pad_sequences_checks_channels():
    x, lengths = pad_sequences([torch.ones(3, 2), torch.zeros(1, 2)])
    assert x.shape == (2, 3, 2) and lengths.tolist() == [3, 1] and torch.isnan(x[1, 1:]).all()
    with pytest.raises(ValueError, match="same channels"):
        pad_sequences([torch.ones(3, 2), torch.ones(3, 3)])


@pytest.mark.requires_data("basicmotions", "japanesevowels", "acsf1")
@pytest.mark.parametrize("name,train,test,steps,channels,classes", [
    ("basicmotions", 40, 40, 100, 6, 4),
    ("japanesevowels", 270, 370, 25, 12, 9),
    ("acsf1", 100, 100, 1460, 1, 10),
])
def test_shared_uea_sets_known_counts(name, train, test, steps, channels, classes):
    tr, te = load_dataset(name, "train"), load_dataset(name, "test")
    assert (len(tr), len(te)) == (train, test)
    assert tr.input_shape == te.input_shape == (steps, channels) and tr.num_classes == classes and tr.is_sequence
    assert not torch.isnan(tr.images).any()
    # standardised with the training split's statistics
    flat = tr.images.reshape(-1, channels).double()
    assert torch.allclose(flat.mean(0), torch.zeros(channels, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(flat.std(0, unbiased=False), torch.ones(channels, dtype=torch.float64), atol=1e-3)
    assert torch.bincount(tr.labels, minlength=classes).min() > 0


@pytest.mark.requires_data("basicmotions")
def test_basicmotions_raw_file_and_classes():
    from eqprop.data.paths import data_root

    path = next(r / "timeseries" / "BasicMotions_TRAIN.ts.gz" for r in data_root()
                if (r / "timeseries" / "BasicMotions_TRAIN.ts.gz").is_file())
    ts = read_ts(path)
    assert ts.classes == ["Standing", "Running", "Walking", "Badminton"] and ts.header["dimensions"] == 6
    assert torch.bincount(ts.labels).tolist() == [10, 10, 10, 10] and ts.lengths.unique().tolist() == [100]


@pytest.mark.requires_data("mnist")
def test_sequential_mnist_and_permutation():
    images = torch.arange(2 * 784, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(2, 1, 28, 28)
    seq = sequential_mnist(images)
    assert seq.shape == (2, 784, 1) and abs(float(seq[0, 29, 0]) - 29 / 255) < 1e-7
    perm = psmnist_permutation()
    assert sorted(perm.tolist()) == list(range(784)) and torch.equal(perm, psmnist_permutation())
    assert torch.equal(sequential_mnist(images, permute=True)[:, :, 0], seq[:, perm, 0])
    ds = load_dataset("smnist", "test")
    assert len(ds) == 10_000 and ds.input_shape == (784, 1) and ds.images.max() <= 1.0
    with pytest.raises(ValueError, match="uint8 images"):
        sequential_mnist(torch.zeros(2, 784))


def test_dataset_accepts_float_sequences_and_features_not_other_ranks():
    Dataset("s", "train", torch.zeros(4, 10, 2, dtype=torch.float32), torch.zeros(4, dtype=torch.int64), ["a"])
    Dataset("f", "train", torch.zeros(4, 10), torch.zeros(4, dtype=torch.int64), ["a"])  # (N, D) features
    with pytest.raises(ValueError, match="float inputs must be"):
        Dataset("s", "train", torch.zeros(4), torch.zeros(4, dtype=torch.int64), ["a"])
