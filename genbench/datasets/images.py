"""Turning decoded images into the square uint8 RGB arrays a `LabeledImages` holds.

Every loader uses CLIP's preprocessing geometry: scale the shorter side to `size` (bicubic), then
crop the centre square. Greyscale, palette and RGBA images are converted to RGB first.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def square_rgb(image: Image.Image, size: int) -> np.ndarray:
    """One PIL image -> (size, size, 3) uint8: shorter side scaled to `size`, centre crop."""
    image = image.convert("RGB")
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), Image.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


def decode(data: bytes) -> Image.Image:
    """Encoded bytes (PNG, JPEG, WebP, PPM, ...) -> PIL image, fully read."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
