import pytest
import torch

from eqprop.data.transforms import (channel_stats, denormalize, normalize, random_crop,
                                    random_horizontal_flip, to_float)


def batch(b=64, c=3, h=8, w=10, seed=0):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_to_float():
    images = torch.tensor([[[[0, 51, 255]]]], dtype=torch.uint8)
    out = to_float(images)
    assert out.dtype == torch.float32
    assert torch.equal(out, torch.tensor([[[[0.0, 0.2, 1.0]]]]))
    assert to_float(out.double()).dtype == torch.float32
    with pytest.raises(TypeError):
        to_float(torch.zeros(2, dtype=torch.int64))


def test_random_crop_padding_zero_is_identity():
    x = batch()
    assert torch.equal(random_crop(x, 0, torch.Generator().manual_seed(1)), x)


def test_random_crop_is_a_window_of_the_padded_input():
    x, p = batch(b=256), 4
    out = random_crop(x, p, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.is_contiguous()
    padded = torch.zeros(256, 3, 8 + 2 * p, 10 + 2 * p)
    padded[:, :, p:-p, p:-p] = x
    offsets = set()
    for b in range(len(x)):  # slow reference: search every window
        hits = [(i, j) for i in range(2 * p + 1) for j in range(2 * p + 1)
                if torch.equal(out[b], padded[b, :, i:i + 8, j:j + 10])]
        assert hits, f"sample {b} is not a window of its padded input"
        offsets.add(hits[0])
    assert len(offsets) > 60  # independent offsets per sample, covering most of the 81
    assert torch.equal(out, random_crop(x, p, torch.Generator().manual_seed(1)))  # reproducible


def test_flip_flips_exactly_the_selected_samples():
    x = batch(b=100)
    out = random_horizontal_flip(x, torch.Generator().manual_seed(3))
    chosen = torch.rand(100, generator=torch.Generator().manual_seed(3)) < 0.5
    assert 0 < chosen.sum() < 100
    assert torch.equal(out[chosen], x[chosen].flip(-1))
    assert torch.equal(out[~chosen], x[~chosen])
    assert torch.equal(out[chosen][:, :, :, 0], x[chosen][:, :, :, -1])
    assert torch.equal(random_horizontal_flip(x, p=0.0), x)
    assert torch.equal(random_horizontal_flip(x, p=1.0), x.flip(-1))


def test_normalize_round_trip_and_stats():
    images = torch.randint(0, 256, (50, 3, 6, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    x = to_float(images)
    mean, std = channel_stats(images)
    ref = x.double()
    assert torch.allclose(mean.double(), ref.mean(dim=(0, 2, 3)), atol=1e-6)
    assert torch.allclose(std.double(), ref.std(dim=(0, 2, 3), unbiased=False), atol=1e-6)
    float_mean, float_std = channel_stats(x, chunk=7)
    assert torch.allclose(float_mean, mean, atol=1e-6) and torch.allclose(float_std, std, atol=1e-6)
    z = normalize(x, mean, std)
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(z.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-5)
    assert torch.allclose(denormalize(z, mean.tolist(), std.tolist()), x, atol=1e-6)


def test_rejects_unbatched_input():
    with pytest.raises(ValueError, match="B, C, H, W"):
        random_crop(torch.zeros(3, 8, 8), 2)
