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
    """(N, H, W[, 1]) floats in [0, 1] -> one (rows*(H+p)+p, cols*(W+p)+p) uint8 picture, row-major;
    colour (N, H, W, 3) gives a colour picture."""
    images = to_uint8(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    n, h, w = images.shape[:3]
    cols = -(-n // rows)
    grid = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding) + images.shape[3:], 64, np.uint8)
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


def save_jpeg(picture, path: Path, quality: int = 90) -> None:
    """Save a uint8 (H, W[, 3]) array as JPEG: photographs at a tenth of their PNG size."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(picture)).save(buffer, format="JPEG", quality=quality)
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


CHART_COLOURS = ("#c2410c", "#1d4ed8", "#15803d", "#7e22ce")  # at least 4.5:1 against white


def line_chart(series: dict[str, tuple[np.ndarray, np.ndarray]], x_label: str = "", right_axis: str | None = None,
               size: tuple[int, int] = (560, 280)) -> np.ndarray:
    """Curves ``{name: (x, y)}`` on shared axes, as a uint8 RGB picture with a legend; the series
    named ``right_axis`` is drawn against its own axis on the right, from 0 to 1 (an accuracy)."""
    width, height = size
    left, right, top, bottom = 56, 48 if right_axis else 12, 30, 34
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    plot_w, plot_h = width - left - right, height - top - bottom
    draw.rectangle((left, top, left + plot_w, top + plot_h), outline="#6b7280")
    finite = lambda values: values[np.isfinite(values)]
    xs = [x for x, _ in series.values() if len(x)]
    left_values = [finite(y) for name, (_, y) in series.items() if name != right_axis and len(finite(y))]
    if not xs or not left_values:
        draw.text((left + 8, top + 8), "waiting for the first steps", fill="black")
        return np.asarray(image)
    x_max = max(float(x.max()) for x in xs) or 1.0
    low = min(float(v.min()) for v in left_values)
    high = max(float(v.max()) for v in left_values)
    low, high = (low - 0.5, high + 0.5) if high - low < 1e-6 else (low - 0.05 * (high - low), high + 0.05 * (high - low))
    to_px = lambda x, y, lo, hi: (left + plot_w * x / x_max, top + plot_h * (1 - (y - lo) / (hi - lo)))
    for i in range(5):  # gridlines and the axes' values
        fraction = i / 4
        y = top + plot_h * (1 - fraction)
        draw.line((left, y, left + plot_w, y), fill="#e5e7eb")
        draw.text((4, y - 6), f"{low + fraction * (high - low):.3g}", fill="#374151")
        if right_axis:
            draw.text((left + plot_w + 4, y - 6), f"{fraction:.2f}", fill="#374151")
        draw.text((left + plot_w * fraction - 10, top + plot_h + 4), f"{x_max * fraction:.0f}", fill="#374151")
    draw.text((left + plot_w // 2 - 12, height - 14), x_label, fill="#374151")
    legend_x = left
    for colour, (name, (x, y)) in zip(CHART_COLOURS, series.items()):
        lo, hi = (0.0, 1.0) if name == right_axis else (low, high)
        keep = np.isfinite(y)
        points = [to_px(float(a), float(b), lo, hi) for a, b in zip(x[keep], y[keep])]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        draw.rectangle((legend_x, 10, legend_x + 14, 20), fill=colour)
        draw.text((legend_x + 18, 9), name, fill="black")
        legend_x += 26 + int(draw.textlength(name))
    return np.asarray(image)
