"""Tensor-only image transforms on batches x of shape (B, C, H, W) (no torchvision)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def _check_batch(x: torch.Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"expected a batch (B, C, H, W), got shape {tuple(x.shape)}")


def _per_channel(v: Sequence[float] | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A length-C sequence (or scalar) as a (1, C, 1, 1) tensor on x's device/dtype."""
    return torch.as_tensor(v, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (any shape) -> float32 in [0, 1]; floating input is only cast to float32."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    if images.is_floating_point():
        return images.to(torch.float32)
    raise TypeError(f"expected uint8 or floating images, got {images.dtype}")


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """(x - mean[c]) / std[c] for each channel c; mean, std: length-C sequences or tensors."""
    _check_batch(x)
    return (x - _per_channel(mean, x)) / _per_channel(std, x)


def denormalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """Inverse of :func:`normalize`: x * std[c] + mean[c]."""
    _check_batch(x)
    return x * _per_channel(std, x) + _per_channel(mean, x)


@torch.no_grad()
def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (population) std of (N, C, H, W) images, each of shape (C,), float32.

    uint8 images are measured on the [0, 1] scale, exactly, from a 256-bin histogram per channel.
    Float images are summed in float64 over chunks of N (no full-size float copy).
    """
    _check_batch(images)
    c = images.shape[1]
    if images.dtype == torch.uint8:
        hist = torch.stack([torch.bincount(images[:, k].reshape(-1), minlength=256) for k in range(c)]).cpu()
        values = torch.arange(256, dtype=torch.float64) / 255.0
        count = hist.sum(1).double()
        total, squares = hist.double() @ values, hist.double() @ values.square()
    else:
        total = torch.zeros(c, dtype=torch.float64, device=images.device)
        squares = torch.zeros_like(total)
        for start in range(0, len(images), chunk):
            block = images[start:start + chunk].double()
            total += block.sum(dim=(0, 2, 3))
            squares += block.square().sum(dim=(0, 2, 3))
        total, squares, count = total.cpu(), squares.cpu(), images.numel() / c
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    return mean.float(), std.float()


def _rand_device(x: torch.Tensor, generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else x.device


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad each side by ``padding`` and take an independent random H x W window per sample.

    Offsets (top, left) are drawn uniformly from [0, 2 * padding] per sample. Vectorised (one
    gather, no loop over the batch). ``padding == 0`` returns ``x`` itself.
    """
    _check_batch(x)
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if padding == 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    device = _rand_device(x, generator)
    top = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=device).to(x.device)
    left = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=device).to(x.device)
    rows = (top[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (B, H, 1)
    cols = (left[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (B, 1, W)
    batch = torch.arange(b, device=x.device)[:, None, None]  # (B, 1, 1)
    # Index (B, H', W', C) with broadcast (B, H, W) indices -> (B, H, W, C).
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_horizontal_flip(x: torch.Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> torch.Tensor:
    """Mirror each sample left-right with probability ``p``.

    Sample i is flipped iff ``torch.rand(B, generator=generator)[i] < p`` (drawn on the
    generator's device, else x's), so a same-seeded generator reproduces the choice.
    """
    _check_batch(x)
    flip = torch.rand(x.shape[0], generator=generator, device=_rand_device(x, generator)) < p
    return torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)
