import math

import pytest
import torch

from eqprop.ssl import augment as A


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_flip_is_exact_mirror():
    x = torch.rand(64, 3, 32, 32, generator=_gen(1))
    y = A.random_horizontal_flip(x, _gen(2), p=0.5)
    flipped = torch.rand(64, generator=_gen(2)) < 0.5
    assert 0 < int(flipped.sum()) < 64
    assert torch.equal(y[flipped], x[flipped].flip(-1))
    assert torch.equal(y[~flipped], x[~flipped])


@pytest.mark.parametrize("scale", [(0.08, 1.0), (0.3, 0.6), (1.0, 1.0)])
def test_crop_boxes_inside_and_in_scale(scale):
    boxes = A.crop_boxes(2000, 32, 32, scale=scale, generator=_gen(3))
    top, left, h, w = boxes.unbind(1)
    assert bool((top >= 0).all() and (left >= 0).all() and (h >= 1).all() and (w >= 1).all())
    assert bool(((top + h) <= 32).all() and ((left + w) <= 32).all())
    frac = (h * w).double() / 1024
    full = (h == 32) & (w == 32)  # the fallback (no candidate fitted) is the whole image
    assert float(full.double().mean()) < 0.05 or scale == (1.0, 1.0)
    inside = (frac >= scale[0] - 1e-12) & (frac <= scale[1] + 1e-12)
    assert bool((inside | full).all())
    if scale == (0.08, 1.0):  # the draws cover the range, not just one corner of it
        assert frac.min() < 0.12 and frac.max() > 0.9
        assert top.max() > 20 and left.max() > 20
        ratio = w.double() / h.double()
        assert ratio.min() < 0.8 and ratio.max() > 1.25


def test_crop_content_comes_from_the_box():
    # pixel value = column index in channel 0, row index in channel 1. The box spans pixel edges
    # [left, left + w), i.e. pixel centres left .. left + w - 1; bilinear sampling of the output
    # pixel centres reads positions within half a pixel of them (the edges), never further out
    cols = torch.arange(32.0).expand(32, 32)
    x = torch.stack([cols, cols.T, torch.zeros(32, 32)])[None].repeat(500, 1, 1, 1)
    boxes = A.crop_boxes(500, 32, 32, generator=_gen(4))
    y = A.resized_crop(x, boxes, 32)
    top, left, h, w = (b.double()[:, None, None] for b in boxes.unbind(1))
    assert bool((y[:, 0] >= left - 0.5 - 1e-4).all() and (y[:, 0] <= left + w - 0.5 + 1e-4).all())
    assert bool((y[:, 1] >= top - 0.5 - 1e-4).all() and (y[:, 1] <= top + h - 0.5 + 1e-4).all())
    same = A.resized_crop(x[:2], torch.tensor([[0, 0, 32, 32]] * 2), 32)
    assert torch.allclose(same, x[:2], atol=1e-4)
    # a 16x16 box resized to 32: the output spans the box's columns and is monotone in them
    half = A.resized_crop(x[:1], torch.tensor([[8, 4, 16, 16]]), 32)[0, 0, 0]
    assert 3.5 <= half[0] <= 4.5 and 18.5 <= half[-1] <= 19.5 and bool((half.diff() >= 0).all())


def test_seeded_views_repeat_exactly_and_differ_across_seeds():
    x = torch.rand(32, 3, 32, 32, generator=_gen(5))
    cfg = A.ViewConfig()
    a1, b1 = A.two_views(x, cfg, _gen(7))
    a2, b2 = A.two_views(x, cfg, _gen(7))
    a3, _ = A.two_views(x, cfg, _gen(8))
    assert torch.equal(a1, a2) and torch.equal(b1, b2)
    assert not torch.equal(a1, a3) and not torch.equal(a1, b1)
    assert a1.shape == x.shape and float(a1.min()) >= 0 and float(a1.max()) <= 1


def test_colour_ops_on_known_tensors():
    x = torch.rand(16, 3, 8, 8, generator=_gen(9))
    g = A.grayscale(x)
    assert torch.allclose(g[:, 0], 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])
    assert torch.allclose(A.hsv_to_rgb(A.rgb_to_hsv(x)), x, atol=1e-6)
    # no jitter at strength 0, every image untouched at p = 0
    assert torch.allclose(A.color_jitter(x, 0, 0, 0, 0, p=1.0, generator=_gen(1)), x, atol=1e-6)
    assert torch.equal(A.color_jitter(x, p=0.0, generator=_gen(1)), x)
    # a hue shift of a pure red by 1/3 turn gives pure green
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1
    hsv = A.rgb_to_hsv(red)
    hsv[:, 0] = (hsv[:, 0] + 1 / 3) % 1
    assert torch.allclose(A.hsv_to_rgb(hsv)[0, :, 0, 0], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    assert torch.equal(A.random_grayscale(x, p=1.0, generator=_gen(1)), g)
    s = A.random_solarize(x, p=1.0, generator=_gen(1))
    assert torch.equal(s, torch.where(x >= 0.5, 1 - x, x))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="crop scale"):
        A.crop_boxes(4, 32, 32, scale=(0.5, 0.2))
    with pytest.raises(TypeError, match="to_float"):
        A.random_resized_crop(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="RGB"):
        A.grayscale(torch.zeros(2, 1, 8, 8))
    assert math.isclose(A.ViewConfig().crop_min_scale, 0.08)
