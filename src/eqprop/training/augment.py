"""Data augmentation of training images as a callback (``data.augment: true``)."""
from __future__ import annotations

from ..callbacks import Callback
from ..data.transforms import random_crop, random_horizontal_flip


class Augment(Callback):
    """Random crop (zero padding ``padding``) and horizontal flip of each training batch (B, C, H, W),
    drawn from the trainer's per-epoch generator, so a rerun sees the same augmentations."""

    def __init__(self, padding: int = 4, flip: bool = True):
        self.padding, self.flip = padding, flip

    def before_step(self, trainer, batch):
        x = random_crop(batch.x, self.padding, trainer.generator)
        batch.x = random_horizontal_flip(x, trainer.generator) if self.flip else x
