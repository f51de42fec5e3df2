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


COLOUR_LEVELS = 8  # a colour histogram's levels per channel: 512 colours
WHITE = 0.97  # a pixel this light in every channel is the background, not drawn


def colour_shares(pixels, levels: int = COLOUR_LEVELS):
    """(N, side, side, 3) colours in [0, 1], NumPy or JAX -> (N, levels**3) in the same library: the
    share of each picture's drawn (not white) pixels near each colour of a levels^3 grid, a pixel's
    weight split between the 8 grid colours around it by nearness, so a colour a shade off moves its
    weight a little instead of across a bin's edge (and under JAX, gradients pass)."""
    xp = pixels.__array_namespace__()
    count, pixels_each = pixels.shape[0], pixels.shape[1] * pixels.shape[2]
    position = xp.clip(pixels * levels - 0.5, 0, levels - 1)  # each channel's value in grid steps
    near = xp.maximum(1.0 - xp.abs(position[..., None] - xp.arange(levels, dtype=pixels.dtype)), 0.0)
    near = near * xp.any(pixels < WHITE, axis=-1).astype(pixels.dtype)[..., None, None]
    red_green = (near[..., 0, :, None] * near[..., 1, None, :]).reshape(count, pixels_each, levels * levels)
    joint = xp.matmul(xp.swapaxes(red_green, 1, 2), near[..., 2, :].reshape(count, pixels_each, levels))
    joint = joint.reshape(count, -1)
    return joint / xp.maximum(joint.sum(-1, keepdims=True), 1.0)


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


def font(size: int):
    """Pillow's bundled scalable font at ``size`` pixels (its bitmap default is ~7 px: too small to read)."""
    from PIL import ImageFont
    return ImageFont.load_default(size=size)


def confusion_matrix_image(matrix: np.ndarray, class_names, cell: int = 44, text: int = 15) -> Image.Image:
    """A labelled confusion matrix (rows: true class, columns: predicted, their names turned upright),
    cells shaded by the fraction of the true class, each showing its count; ``text`` pixels high."""
    k, letters = len(class_names), font(text)
    margin = 12 + int(max(letters.getlength(name) for name in class_names))
    top = margin + text + 12
    image = Image.new("RGB", (margin + k * cell + 8, top + k * cell + 8), "white")
    draw = ImageDraw.Draw(image)
    fractions = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    for i in range(k):
        draw.text((margin - 6, top + i * cell + cell // 2), class_names[i], fill="black", font=letters, anchor="rm")
        header = Image.new("RGB", (margin - 6, cell), "white")
        ImageDraw.Draw(header).text((0, cell // 2), class_names[i], fill="black", font=letters, anchor="lm")
        image.paste(header.rotate(90, expand=True), (margin + i * cell, top - margin + 6))
        for j in range(k):
            shade = int(255 * (1 - fractions[i, j]))
            color = (shade, shade, 255) if i == j else (255, shade, shade)
            box = (margin + j * cell, top + i * cell, margin + (j + 1) * cell - 1, top + (i + 1) * cell - 1)
            draw.rectangle(box, fill=color)
            draw.text(((box[0] + box[2]) // 2, (box[1] + box[3]) // 2), str(int(matrix[i, j])), font=letters,
                      anchor="mm", fill="white" if fractions[i, j] > 0.6 else "black")
    draw.text((4, 4), "rows: true class, columns: predicted", fill="black", font=letters)
    return image


def label_rows(grid: np.ndarray, names, left: int | None = None, text: int = 22) -> np.ndarray:
    """(H, W[, 3]) uint8 grid of len(names) equal blocks stacked vertically -> (H, left + W[, 3]) with
    each block's name written in the margin at its middle (white on the grid's gray), ``text`` pixels
    high; the margin ``left`` pixels wide, or (None) as wide as the longest name needs."""
    if left is None:
        left = 16 + int(max(font(text).getlength(name) for name in names))
    margin = ((0, 0), (left, 0)) + ((0, 0),) * (grid.ndim - 2)
    canvas = Image.fromarray(np.pad(grid, margin, constant_values=64))
    draw, letters = ImageDraw.Draw(canvas), font(text)
    block = grid.shape[0] / len(names)
    white = 255 if grid.ndim == 2 else (255, 255, 255)
    for i, name in enumerate(names):
        draw.text((8, (i + 0.5) * block), name, fill=white, font=letters, anchor="lm")
    return np.asarray(canvas)


CHART_COLOURS = ("#c2410c", "#1d4ed8", "#15803d", "#7e22ce")  # at least 4.5:1 against white


def line_chart(series: dict[str, tuple[np.ndarray, np.ndarray]], x_label: str = "", right_axis: str | None = None,
               size: tuple[int, int] = (560, 300), text: int = 18) -> np.ndarray:
    """Curves ``{name: (x, y)}`` on shared axes, as a uint8 RGB picture with a legend; the series
    named ``right_axis`` is drawn against its own axis on the right, from 0 to 1 (an accuracy).
    Text is ``text`` pixels high: 12 or more on the page, where the chart shows at ~70% of its size."""
    width, height = size
    letters = font(text)
    left, right, top, bottom = 4 + int(letters.getlength("-0.0000")) + 6, 56 if right_axis else 12, 2 * text + 16, 2 * text + 14
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    plot_w, plot_h = width - left - right, height - top - bottom
    draw.rectangle((left, top, left + plot_w, top + plot_h), outline="#6b7280")
    finite = lambda values: values[np.isfinite(values)]
    xs = [x for x, _ in series.values() if len(x)]
    left_values = [finite(y) for name, (_, y) in series.items() if name != right_axis and len(finite(y))]
    if not xs or not left_values:
        draw.text((left + 8, top + 8), "waiting for the first steps", fill="black", font=letters)
        return np.asarray(image)
    x_max = max(float(x.max()) for x in xs) or 1.0
    low = min(float(v.min()) for v in left_values)
    high = max(float(v.max()) for v in left_values)
    low, high = (low - 0.5, high + 0.5) if high - low < 1e-6 else (low - 0.05 * (high - low), high + 0.05 * (high - low))
    to_px = lambda x, y, lo, hi: (left + plot_w * x / x_max, top + plot_h * (1 - (y - lo) / (hi - lo)))
    grey = "#374151"
    for i in range(5):  # gridlines and the axes' values
        fraction = i / 4
        y = top + plot_h * (1 - fraction)
        draw.line((left, y, left + plot_w, y), fill="#e5e7eb")
        draw.text((left - 6, y), f"{low + fraction * (high - low):.3g}", fill=grey, font=letters, anchor="rm")  # ≤ 7 chars
        if right_axis:
            draw.text((left + plot_w + 6, y), f"{fraction:.2f}", fill=grey, font=letters, anchor="lm")
        draw.text((left + plot_w * fraction, top + plot_h + 4), f"{x_max * fraction:.0f}", fill=grey, font=letters,
                  anchor="ma")
    draw.text((left + plot_w // 2, height - 4), x_label, fill=grey, font=letters, anchor="md")
    legend_x, legend_y = left, 6
    for colour, (name, (x, y)) in zip(CHART_COLOURS, series.items()):
        lo, hi = (0.0, 1.0) if name == right_axis else (low, high)
        keep = np.isfinite(y)
        points = [to_px(float(a), float(b), lo, hi) for a, b in zip(x[keep], y[keep])]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        if legend_x + 26 + letters.getlength(name) > width:  # the legend wraps to a second line
            legend_x, legend_y = left, legend_y + text + 4
        draw.rectangle((legend_x, legend_y + 3, legend_x + 14, legend_y + 13), fill=colour)
        draw.text((legend_x + 18, legend_y), name, fill="black", font=letters)
        legend_x += 30 + int(letters.getlength(name))
    return np.asarray(image)
