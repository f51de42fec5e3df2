"""Image files users send that are not plain 8-bit RGB: written to a folder, one file per case.

Shared by the service tests (in-process) and the server tests (through the HTTP API)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def garment(image_u8: np.ndarray, directory: Path) -> dict[str, Path]:
    """The same 28x28 uint8 garment (light on dark) in modes the studio must read correctly."""
    directory.mkdir(parents=True, exist_ok=True)
    base = Image.fromarray(image_u8)
    files = {}

    def save(name, image, **kwargs):
        files[name] = directory / name
        image.save(files[name], **kwargs)

    save("gray.png", base)
    save("16bit.png", Image.fromarray(image_u8.astype(np.uint16) * 257))  # mode I;16
    save("palette.png", base.convert("RGB").convert("P", palette=Image.ADAPTIVE, colors=256))
    save("cmyk.jpg", base.convert("CMYK"), quality=95)
    rgba = base.convert("RGBA")
    rgba.putalpha(255)
    save("rgba.png", rgba)
    save("photo_dark_on_light.png", Image.fromarray(255 - np.kron(image_u8, np.ones((8, 8), np.uint8))))
    return files


def unusable(directory: Path, valid_png: Path) -> dict[str, Path]:
    """Files that must be refused with a clear message."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "not_an_image.png": directory / "not_an_image.png",
        "truncated.png": directory / "truncated.png",
        "bomb.png": directory / "bomb.png",
        "one_pixel.png": directory / "one_pixel.png",
    }
    files["not_an_image.png"].write_text("this is a text file, not a picture\n" * 20)
    # A PNG whose compressed data is cut off: the header is valid, the pixels are not there.
    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256), dtype=np.uint8))
    buffer = io.BytesIO()
    big.save(buffer, format="PNG")
    files["truncated.png"].write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    # A decompression bomb: 10000x10000 = 100 megapixels of one colour, a few kB on disk.
    Image.new("1", (10000, 10000)).save(files["bomb.png"], optimize=True)
    Image.new("L", (1, 1), 128).save(files["one_pixel.png"])
    return files


def largest_allowed(directory: Path, names=("rgba.png", "gray16.png", "float.tiff", "strip.png", "layer.png")
                    ) -> dict[str, Path]:
    """The largest uploads the limits allow, those ``names`` of: 25 MP in RGBA, 16-bit and float, a
    20:1 strip, and a 25 MP painted layer (a square on transparency); each under 10 MB on disk."""
    directory.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:5000, 0:5000]
    layer = np.zeros((5000, 5000, 4), np.uint8)
    layer[2000:3000, 2000:3000] = 255
    make = {
        "rgba.png": lambda: Image.fromarray(np.stack([x % 256, y % 256, (x + y) % 256, np.full_like(x, 255)], -1)
                                            .astype(np.uint8), "RGBA"),
        "gray16.png": lambda: Image.fromarray(((x * 13 + y) % 65536).astype(np.uint16)),
        "float.tiff": lambda: Image.fromarray((x % 97 / 97).astype(np.float32), "F"),
        "strip.png": lambda: Image.fromarray((np.mgrid[0:1000, 0:20000][1] % 256).astype(np.uint8)),
        "layer.png": lambda: Image.fromarray(layer, "RGBA"),
    }
    files = {name: directory / name for name in names}
    for name, path in files.items():
        make[name]().save(path, **({"compression": "tiff_adobe_deflate"} if name.endswith(".tiff") else {}))
    return files
