"""Batched, seeded augmentations for small RGB images (B, 3, H, W) in [0, 1], written on tensors.

Every random draw comes from the ``generator`` passed in, per sample and vectorised over the batch,
so the same seed gives the same views. The set and the default strengths follow the paper's CIFAR
setting (``scripts/pretrain/cifar/augmentations/asymmetric.yaml`` of fmi-basel/implicit-var-reg):
random resized crop (scale 0.08..1, ratio 3/4..4/3), horizontal flip 0.5, colour jitter with
probability 0.8 (brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1), grayscale 0.2, and
solarisation 0.2 on the second view only. Gaussian blur is off for CIFAR there, and not built here.

Differences from torchvision (named so nobody is surprised): the jitter is applied in the fixed
order brightness, contrast, saturation, hue (torchvision shuffles the order per call); the crop
draws ``tries`` candidate boxes per sample and falls back to the whole image when none fits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.transforms import random_horizontal_flip

_GRAY = (0.299, 0.587, 0.114)


def _check_images(x: torch.Tensor, rgb: bool = False) -> None:
    if x.dim() != 4:
        raise ValueError(f"expected a batch of images (B, C, H, W), got shape {tuple(x.shape)}")
    if rgb and x.shape[1] != 3:
        raise ValueError(f"colour augmentations need RGB images (B, 3, H, W), got {x.shape[1]} channel(s)")
    if not x.is_floating_point():
        raise TypeError(f"augmentations work on float images in [0, 1], got {x.dtype}; "
                        f"convert with eqprop.data.transforms.to_float")


def _uniform(n: int, lo: float, hi: float, generator, like: torch.Tensor) -> torch.Tensor:
    dev = generator.device if generator is not None else like.device
    u = torch.rand(n, generator=generator, device=dev, dtype=torch.float64).to(like.device)
    return lo + (hi - lo) * u


def _coin(n: int, p: float, generator, like: torch.Tensor) -> torch.Tensor:
    dev = generator.device if generator is not None else like.device
    return (torch.rand(n, generator=generator, device=dev) < p).to(like.device)


def crop_boxes(batch: int, height: int, width: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
               generator: torch.Generator | None = None, tries: int = 10) -> torch.Tensor:
    """Integer boxes (top, left, h, w), shape (batch, 4), of area fraction in ``scale`` and aspect
    ratio w/h in ``ratio`` (log-uniform), placed uniformly inside the image.

    ``tries`` candidates are drawn per sample; the first that fits the image and whose rounded area
    is inside ``scale`` is kept; a sample with none takes the whole image.
    """
    lo, hi = float(scale[0]), float(scale[1])
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"crop scale must satisfy 0 < min <= max <= 1, got {scale}")
    if not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"crop ratio must satisfy 0 < min <= max, got {ratio}")
    dev = generator.device if generator is not None else torch.device("cpu")
    area = height * width
    u = torch.rand(batch, tries, 2, generator=generator, device=dev, dtype=torch.float64).cpu()
    target = area * (lo + (hi - lo) * u[..., 0])
    logr = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[..., 1]
    aspect = torch.exp(logr)
    w = torch.round(torch.sqrt(target * aspect)).long()
    h = torch.round(torch.sqrt(target / aspect)).long()
    frac = (h * w).double() / area
    ok = (w >= 1) & (h >= 1) & (w <= width) & (h <= height) & (frac >= lo - 1e-12) & (frac <= hi + 1e-12)
    first = torch.where(ok.any(1), ok.double().argmax(1), torch.full((batch,), -1))
    pick = first.clamp_min(0)
    hh = torch.where(first >= 0, h[torch.arange(batch), pick], torch.full((batch,), height))
    ww = torch.where(first >= 0, w[torch.arange(batch), pick], torch.full((batch,), width))
    v = torch.rand(batch, 2, generator=generator, device=dev, dtype=torch.float64).cpu()
    top = torch.floor(v[:, 0] * (height - hh + 1)).long().clamp(max=height - hh)
    left = torch.floor(v[:, 1] * (width - ww + 1)).long().clamp(max=width - ww)
    return torch.stack([top, left, hh, ww], 1)


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Cut box (top, left, h, w) out of each image and resize it to ``size`` (bilinear, one
    ``grid_sample`` for the batch). A box equal to the image at the image's size returns the image."""
    _check_images(x)
    b, _, height, width = x.shape
    oh, ow = (size, size) if isinstance(size, int) else size
    top, left, h, w = (boxes[:, i].to(x.device, x.dtype) for i in range(4))
    theta = torch.zeros(b, 2, 3, dtype=x.dtype, device=x.device)
    # normalised coordinates (align_corners=False): -1 is the left edge of pixel 0, +1 the right edge of the last
    theta[:, 0, 0] = w / width
    theta[:, 0, 2] = (2 * left + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * top + h) / height - 1
    grid = F.affine_grid(theta, [b, x.shape[1], oh, ow], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_resized_crop(x, size=None, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), generator=None, tries=10):
    """Random resized crop of each image (see :func:`crop_boxes`); ``size`` defaults to the input's."""
    _check_images(x)
    boxes = crop_boxes(x.shape[0], x.shape[2], x.shape[3], scale, ratio, generator, tries)
    return resized_crop(x, boxes, size if size is not None else (x.shape[2], x.shape[3]))


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma 0.299 R + 0.587 G + 0.114 B, repeated on the three channels."""
    _check_images(x, rgb=True)
    g = (x * torch.tensor(_GRAY, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)).sum(1, keepdim=True)
    return g.expand_as(x)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    mx, _ = x.max(1)
    mn, _ = x.min(1)
    d = mx - mn
    safe = torch.where(d > 0, d, torch.ones_like(d))
    h = torch.where(mx == r, ((g - b) / safe) % 6, torch.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4))
    h = torch.where(d > 0, h / 6, torch.zeros_like(h))
    s = torch.where(mx > 0, d / torch.where(mx > 0, mx, torch.ones_like(mx)), torch.zeros_like(mx))
    return torch.stack([h, s, mx], 1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(1)
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], 1)
    return v[:, None] - (v * s)[:, None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def color_jitter(x, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, p=0.8, generator=None):
    """With probability ``p`` per image: brightness x*b, contrast (x - mean gray) c + mean gray,
    saturation (x - gray) s + gray with b, c, s ~ U[1 - strength, 1 + strength], then a hue shift
    ~ U[-hue, hue] turns of the colour wheel; clamped to [0, 1] after each step."""
    _check_images(x, rgb=True)
    if not 0 <= hue <= 0.5:
        raise ValueError(f"hue must be in [0, 0.5], got {hue}")
    n = x.shape[0]
    on = _coin(n, p, generator, x)
    fb = _uniform(n, max(0.0, 1 - brightness), 1 + brightness, generator, x).to(x.dtype)
    fc = _uniform(n, max(0.0, 1 - contrast), 1 + contrast, generator, x).to(x.dtype)
    fs = _uniform(n, max(0.0, 1 - saturation), 1 + saturation, generator, x).to(x.dtype)
    fh = _uniform(n, -hue, hue, generator, x).to(x.dtype)
    col = lambda t: t.reshape(-1, 1, 1, 1)  # noqa: E731
    y = (x * col(fb)).clamp(0, 1)
    m = grayscale(y).mean(dim=(1, 2, 3), keepdim=True)
    y = ((y - m) * col(fc) + m).clamp(0, 1)
    g = grayscale(y)
    y = ((y - g) * col(fs) + g).clamp(0, 1)
    if hue > 0:
        hsv = rgb_to_hsv(y)
        hsv = torch.stack([(hsv[:, 0] + fh.reshape(-1, 1, 1)) % 1.0, hsv[:, 1], hsv[:, 2]], 1)
        y = hsv_to_rgb(hsv).clamp(0, 1)
    return torch.where(col(on), y, x)


def random_grayscale(x, p=0.2, generator=None):
    _check_images(x, rgb=True)
    on = _coin(x.shape[0], p, generator, x)
    return torch.where(on.reshape(-1, 1, 1, 1), grayscale(x), x)


def random_solarize(x, p=0.0, threshold=0.5, generator=None):
    """Invert (1 - x) the pixels >= ``threshold`` of each image chosen with probability ``p``."""
    _check_images(x)
    on = _coin(x.shape[0], p, generator, x)
    return torch.where(on.reshape(-1, 1, 1, 1) & (x >= threshold), 1 - x, x)


@dataclass
class ViewConfig:
    """One view's augmentation (the ``augment`` section; ``solarize`` is used for the second view)."""

    crop_min_scale: float = 0.08
    crop_max_scale: float = 1.0
    flip: float = 0.5
    jitter: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale: float = 0.2
    solarize: float = 0.2


def augment_view(x: torch.Tensor, cfg: ViewConfig, generator=None, solarize: bool = False) -> torch.Tensor:
    """One random view of each image of a float batch in [0, 1]."""
    y = random_resized_crop(x, scale=(cfg.crop_min_scale, cfg.crop_max_scale), generator=generator)
    y = random_horizontal_flip(y, generator, p=cfg.flip)
    y = color_jitter(y, cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue, cfg.jitter, generator)
    y = random_grayscale(y, cfg.grayscale, generator)
    if solarize:
        y = random_solarize(y, cfg.solarize, generator=generator)
    return y


def two_views(x: torch.Tensor, cfg: ViewConfig, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The asymmetric pair of the paper's CIFAR setting: solarisation on the second view only."""
    return augment_view(x, cfg, generator), augment_view(x, cfg, generator, solarize=True)
