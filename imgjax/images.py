"""Turning arrays into pictures: image grids, PNG files and the confusion-matrix chart."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .checkpoint import atomic_write


def to_uint8(images) -> np.ndarray:
    """float in [0, 1] -> uint8 in [0, 255], any shape."""
    return (np.clip(np.asarray(images, np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W) luminance (ITU-R 601 weights, as Pillow's 'L'); gray images exactly."""
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return rgb[..., 0].copy()
    return rgb @ np.array([0.299, 0.587, 0.114], np.float32)


def upscale(picture: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling, so that 28-pixel images stay crisp on screen."""
    return np.repeat(np.repeat(picture, factor, axis=0), factor, axis=1)


def example_garment() -> np.ndarray:
    """A (28, 28, 3) light rectangle on black: an input for compiling programs before the first user."""
    example = np.zeros((28, 28, 3), np.float32)
    example[6:22, 8:20] = 0.8
    return example


def image_grid(images, rows: int, padding: int = 2) -> np.ndarray:
    """(N, H, W[, 1]) floats in [0, 1] -> one (rows*(H+p)+p, cols*(W+p)+p) uint8 picture, row-major."""
    images = to_uint8(images)
    if images.ndim == 4:
        images = images[..., 0]
    n, h, w = images.shape
    cols = -(-n // rows)
    grid = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding), 64, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        grid[top:top + h, left:left + w] = image
    return grid


def save_png(picture, path: Path, scale: int = 1) -> None:
    """Save a uint8 (H, W) or (H, W, 3) array or a PIL image as PNG, optionally upscaled (nearest)."""
    image = picture if isinstance(picture, Image.Image) else Image.fromarray(np.asarray(picture))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write(Path(path), buffer.getvalue())


def confusion_matrix_image(matrix: np.ndarray, class_names, cell: int = 44) -> Image.Image:
    """A labelled confusion matrix (rows: true class, columns: predicted), cells shaded by the
    fraction of the true class, each showing its count."""
    k = len(class_names)
    margin = 96
    image = Image.new("RGB", (margin + k * cell + 8, margin + k * cell + 8), "white")
    draw = ImageDraw.Draw(image)
    fractions = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    for i in range(k):
        draw.text((4, margin + i * cell + cell // 2 - 5), class_names[i][:13], fill="black")
        draw.text((margin + i * cell + 2, margin - 14 - 12 * (i % 2)), class_names[i][:7], fill="black")
        for j in range(k):
            shade = int(255 * (1 - fractions[i, j]))
            color = (shade, shade, 255) if i == j else (255, shade, shade)
            box = (margin + j * cell, margin + i * cell, margin + (j + 1) * cell - 1, margin + (i + 1) * cell - 1)
            draw.rectangle(box, fill=color)
            draw.text((box[0] + 4, box[1] + cell // 2 - 5), str(int(matrix[i, j])),
                      fill="white" if fractions[i, j] > 0.6 else "black")
    draw.text((margin, 4), "rows: true class   columns: predicted", fill="black")
    return image
