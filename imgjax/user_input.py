"""What users send, checked and read within fixed limits: image files (from a path, bytes or a PIL
image) and the numbers and choices beside them. Nothing here imports Gradio or JAX.

Every problem raises ``InputError`` with one plain sentence for the user (no paths, no exception
names). Limits hold before decoding: a file's size, its pixel count and its shape are read from the
header; large images are decoded one at a time and reduced to the size the model needs before any
float conversion, so a request's memory is bounded whatever the file claims.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


class InputError(ValueError):
    """A user's input cannot be used; the message says why and what would work."""


MAX_FILE_BYTES = 10 * 2**20  # an image file (upload, inline data or editor layer)
MAX_PIXELS = 25_000_000  # refused from the header, before decoding (decompression bombs)
MIN_SIDE = 8  # smaller images carry too little to classify or denoise
MAX_ASPECT = 20  # long side / short side: stripes beyond this hold no garment and no photo
MAX_SEED = 2**31 - 1  # seeds are int32, so every JAX key and API client reads them alike
MAX_MAGNITUDE = 1e15  # no number a user sends means anything beyond this (seeds, counts, latents)
MAX_TEXT = 1000  # characters in any string a user sends (a choice, a command, a class name)
MAX_ITEMS = 1000  # values in any list or object a user sends (a code's latent has 64)
LARGE_PIXELS = 2_000_000  # images above this decode one at a time (at most ~100 MB each)
_BAND_PIXELS = 1_000_000  # a large image converts and reduces this many pixels at a time

# Pillow refuses to open images more than twice this size (DecompressionBombError) and warns above it;
# ``open_image`` refuses those with a message of its own, so the warning would only fill the log.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
_large_decode = threading.Semaphore(1)
# Modes decoded into a wider one before reducing (Pillow reduces neither bits nor 16-bit integers).
_WIDE_MODE = {"1": "L", "I;16": "I", "I;16B": "I", "I;16L": "I", "I;16N": "I"}
# EXIF orientation -> the transpose that shows the image upright (as ImageOps.exif_transpose).
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}
TOO_BIG_FILE = f"That file is larger than {MAX_FILE_BYTES // 2**20} MB: send a smaller one (PNG or JPEG)."
NOT_AN_IMAGE = "That file is not an image (or not in a format Pillow can read): try PNG or JPEG."
CORRUPT = "The image file is truncated or corrupt: it could not be decoded."


def _too_many_pixels(width: int, height: int) -> str:
    return (f"That image is too large ({width}x{height} pixels): at most {MAX_PIXELS // 1_000_000} megapixels. "
            "Downscale it first.")


def open_image(source) -> Image.Image:
    """A file path, bytes, file object or PIL image -> the image, opened lazily (header only) and
    checked: file size, pixel count, smallest side and aspect ratio."""
    if isinstance(source, Image.Image):
        image = source
    else:
        size = len(source) if isinstance(source, bytes) else _file_size(source)
        if size > MAX_FILE_BYTES:
            raise InputError(TOO_BIG_FILE)
        if isinstance(source, bytes):
            source = io.BytesIO(source)
        try:
            image = Image.open(source)
        except Image.DecompressionBombError as error:  # over twice the limit: Pillow names only the count
            pixels = re.search(r"\((\d+) pixels\)", str(error))
            raise InputError(f"That image is too large ({int(pixels[1]) // 1_000_000 if pixels else 'over 50'} "
                             f"megapixels): at most {MAX_PIXELS // 1_000_000}. Downscale it first.") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            raise InputError(NOT_AN_IMAGE) from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise InputError(_too_many_pixels(width, height))
    if min(width, height) < MIN_SIDE:
        raise InputError(f"That image is only {width}x{height} pixels: at least {MIN_SIDE}x{MIN_SIDE} is needed.")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise InputError(f"That image is {width}x{height} pixels, a strip more than {MAX_ASPECT} times longer than "
                         "it is wide: crop it closer to the picture.")
    return image


def _file_size(source) -> int:
    if isinstance(source, (str, Path)):
        try:
            return os.path.getsize(source)
        except OSError:
            raise InputError("The image could not be found on the server: send it again.") from None
    position = source.tell()
    size = source.seek(0, io.SEEK_END)
    source.seek(position)
    return size


def decode(image: Image.Image, max_side: int | None = None) -> Image.Image:
    """Decode an opened image, upright (EXIF), with its long side reduced to at most ``max_side``
    (an integer box filter while still in the file's own dtype, then an exact box resize)."""
    width, height = image.size
    large = width * height > LARGE_PIXELS
    with _large_decode if large else contextlib.nullcontext():
        try:
            orientation = image.getexif().get(0x0112, 1)
            if max_side and image.format == "JPEG":
                image.draft(image.mode, (max(1, width * max_side // max(image.size)),
                                         max(1, height * max_side // max(image.size))))
            image.load()
            wide = (_WIDE_MODE.get(image.mode) or ("RGBA" if "transparency" in image.info else "RGB")
                    if image.mode in ("1", "P", "I;16", "I;16B", "I;16L", "I;16N") else None)
            factor = max(image.size) // max_side if max_side else 1
            if factor > 1:
                image = _convert_and_reduce(image, wide, factor)
            elif wide:
                image = image.convert(wide)
            if max_side and max(image.size) > max_side:
                scale = max_side / max(image.size)
                size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
                image = image.resize(size, Image.BOX)
            if orientation in _UPRIGHT:
                image = image.transpose(_UPRIGHT[orientation])
            return image
        except (OSError, ValueError, SyntaxError, EOFError):  # Pillow's errors for truncated or corrupt data
            raise InputError(CORRUPT) from None


def _convert_and_reduce(image: Image.Image, mode: str | None, factor: int) -> Image.Image:
    """``image`` converted to ``mode`` (when given) and box-reduced by ``factor``, a band of rows at a
    time: no full-size copy is made beside the decoded image (a whole-image convert is one, and
    Pillow's reduce premultiplies RGBA into another). Bands are whole blocks tall, so the result is
    the whole-image reduce's, pixel for pixel."""
    rows = factor * max(1, _BAND_PIXELS // (image.width * factor))
    reduced = None
    for top in range(0, image.height, rows):
        band = image.crop((0, top, image.width, min(top + rows, image.height)))
        band = (band.convert(mode) if mode else band).reduce(factor)
        if reduced is None:
            reduced = Image.new(band.mode, (band.width, -(-image.height // factor)))
        reduced.paste(band, (0, top // factor))
    reduced.info = {key: value for key, value in image.info.items() if key != "transparency" or not mode}
    return reduced


def read_image(source, max_side: int | None = None) -> np.ndarray:
    """A file path, bytes or PIL image -> (H, W, 3) float32 RGB in [0, 1], the long side at most
    ``max_side`` (when given).

    Handles 1-bit, 8-bit, 16-bit and float grayscale, palette, RGB, CMYK and images with alpha
    (composited onto white, so black strokes on a transparent sketch canvas stay black); applies
    the EXIF orientation. Raises InputError for anything that is not a usable image."""
    image = decode(open_image(source), max_side)
    if image.mode in ("I", "F"):  # high bit depth grayscale
        values = np.asarray(image, np.float32)
        if not np.isfinite(values).all():
            raise InputError("That image has pixels that are not numbers (NaN or infinity): save it as an 8- or "
                             "16-bit PNG.")
        top = float(values.max())
        top = max(1.0, top) if image.mode == "F" else (65535.0 if top <= 65535 else top)
        gray = np.clip(values / max(top, 1e-12), 0.0, 1.0)
        return np.repeat(gray[..., None], 3, axis=-1)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = np.asarray(image.convert("RGBA"), np.float32) / 255.0
        alpha = rgba[..., 3:]
        return rgba[..., :3] * alpha + (1.0 - alpha)  # onto white
    return np.asarray(image.convert("RGB"), np.float32) / 255.0


def read_mask(source, shape: tuple[int, int]) -> np.ndarray:
    """A painted layer (strokes opaque on transparent, or white on black) -> (H, W) {0, 1} float32
    mask at ``shape``: 1 where painted. The layer is checked and reduced as images are."""
    image = decode(open_image(source), max(shape) * 2)
    if "A" in image.getbands() or "transparency" in image.info:
        values = np.asarray(image.convert("RGBA"))[..., 3]
    else:
        values = np.asarray(image.convert("L"))
    mask = Image.fromarray(((values > 127) * 255).astype(np.uint8)).resize(shape[::-1], Image.NEAREST)
    return (np.asarray(mask) > 127).astype(np.float32)


def check_range(name: str, value, low: float, high: float) -> float:
    if not is_number(value):
        raise InputError(f"{name} must be a number between {_number(low)} and {_number(high)}, got {shown(value)}.")
    if abs(value) > MAX_MAGNITUDE:  # compared before float(), which fails on a 400-digit integer
        raise InputError(f"{name} must be between {_number(low)} and {_number(high)}, got a number far outside that.")
    value = float(value)
    if math.isnan(value) or not (low <= value <= high):
        raise InputError(f"{name} must be between {_number(low)} and {_number(high)}, got {_number(value)}.")
    return value


def check_int(name: str, value, low: int, high: int) -> int:
    number = check_range(name, value, low, high)
    if number != int(number):
        raise InputError(f"{name} must be a whole number, got {_number(number)}.")
    return int(number)


def check_choice(name: str, value, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}; got {shown(value)}.")
    return value


def is_number(value) -> bool:
    """An int or float (numpy's too), and not a boolean (which Python counts as an int)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _number(value: float) -> str:
    """1 -> '1', 2147483647.0 -> '2147483647', 0.25 -> '0.25', nan -> 'nan', 1e300 -> '1e+300'."""
    return str(int(value)) if math.isfinite(value) and value == int(value) and abs(value) < 1e15 else f"{value:g}"


def shown(value) -> str:
    """A short, safe rendering of a user's value for a message."""
    text = "nothing" if value is None else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
