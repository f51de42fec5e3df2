"""Fashion-MNIST (and MNIST) from IDX files: find, download with checksums, validate, batch.

Where the files are looked for, in order:
  1. an explicit ``data_dir`` (``--data-dir``) or the ``IMGJAX_DATA_DIR`` environment variable,
  2. the user cache directory (``$XDG_CACHE_HOME/imgjax/<dataset>``, default ``~/.cache``),
  3. ``/usr/share/datasets/<dataset>`` (Debian's ``dataset-fashion-mnist`` package),
  4. else the canonical download into the cache directory.

Each file may be gzip-compressed (``name.gz``) or not. Debian recompresses the ``.gz`` files, so their
bytes differ from the canonical downloads; the SHA-256 of the *decompressed* bytes identifies the
data whichever way it arrived, and that is what downloads are checked against.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path
from typing import Iterator

import numpy as np

FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    url: str
    classes: tuple[str, ...]
    # SHA-256 of the decompressed IDX bytes, keyed by file stem.
    sha256: dict[str, str]


FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    classes=FASHION_CLASSES,
    sha256={
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
)

MNIST = DatasetSpec(
    name="mnist",
    url="http://yann.lecun.com/exdb/mnist/",
    classes=tuple(str(d) for d in range(10)),
    sha256={},  # checked by header validation only
)

DATASETS = {spec.name: spec for spec in (FASHION_MNIST, MNIST)}
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SYSTEM_DIR = Path("/usr/share/datasets")


class DataError(RuntimeError):
    """A dataset file is missing, truncated, corrupt or does not match its checksum, or a family cannot
    read the dataset asked for."""


@dataclasses.dataclass(frozen=True)
class Split:
    """images: (N, 28, 28) uint8 (or (N, side, side, 3) in colour); labels: (N,) int32 indices into
    ``classes``, the names pictures and pages give them."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...] = FASHION_CLASSES

    def __len__(self) -> int:
        return len(self.labels)

    def epoch_order(self, rng: np.random.Generator) -> np.ndarray:
        """The pictures one epoch takes, in order: each once, shuffled."""
        return rng.permutation(len(self))

    @property
    def styles(self) -> np.ndarray | None:
        """(N,) a second label, the picture's style (emoji: the art set), or None where there is none."""
        return None

    @property
    def tone_labels(self) -> np.ndarray | None:
        """(N,) a third label, the picture's skin tone (emoji), or None where there is none."""
        return None

    def labels_at(self, index: np.ndarray) -> np.ndarray:
        """The labels of the pictures at ``index`` as the training steps take them: (B,) classes, or
        (B, 2) classes and styles where the split has a second label, (B, 3) with tones a third."""
        if self.styles is None:
            return self.labels[index]
        columns = [self.labels, self.styles] + ([] if self.tone_labels is None else [self.tone_labels])
        return np.stack([column[index] for column in columns], axis=-1)


# ----------------------------------------------------------------------------- IDX format

_IDX_DTYPES = {0x08: np.uint8}


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes (magic 0x0000TTNN: type TT, NN dimensions) into an array, validating the header."""
    if len(raw) < 4:
        raise DataError(f"{name}: {len(raw)} bytes is too short for an IDX header")
    zero, dtype_code, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0 or dtype_code not in _IDX_DTYPES or ndim not in (1, 3):
        raise DataError(f"{name}: not an IDX file of uint8 data (magic bytes {raw[:4].hex()})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(
            f"{name}: IDX header says shape {shape} ({expected} bytes) but the file holds "
            f"{len(raw)} bytes: truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_idx(path: Path) -> tuple[np.ndarray, bytes]:
    """Read an IDX file (gzip or not); returns (array, decompressed bytes)."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DataError(f"{path}: cannot read or decompress ({error})") from error
    return parse_idx(raw, str(path)), raw


# ----------------------------------------------------------------------------- locating files

def cache_dir(name: str) -> Path:
    """The user cache folder of the dataset ``name``: ``$XDG_CACHE_HOME/imgjax/<name>``."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "imgjax" / name


def _find_file(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def candidate_dirs(spec: DatasetSpec, data_dir: str | os.PathLike | None) -> list[Path]:
    explicit = data_dir or os.environ.get("IMGJAX_DATA_DIR")
    if explicit:
        return [Path(explicit)]  # an explicit choice is never silently replaced by another source
    return [cache_dir(spec.name), SYSTEM_DIR / spec.name]


def download(url: str, destination: Path, sha256: str | None, integrity: str | None = None) -> Path:
    """Download ``url`` to ``destination`` atomically; check the SHA-256 of the decompressed bytes,
    or ``integrity``, an npm package's "sha512-<base64>" of the file's own bytes.

    On a network error or checksum mismatch nothing is left at ``destination``.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=destination.parent, prefix=destination.name, suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, out)
        raw = tmp.read_bytes()
        if integrity is not None and npm_integrity(raw) != integrity:
            raise DataError(f"{url}: checksum mismatch (got {npm_integrity(raw)}, expected {integrity})")
        if sha256 is not None:
            raw = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
            digest = hashlib.sha256(raw).hexdigest()
            if digest != sha256:
                raise DataError(f"{url}: checksum mismatch (got sha256 {digest}, expected {sha256})")
        os.replace(tmp, destination)
        return destination
    except DataError:
        raise
    except Exception as error:  # network, disk or gzip failure: report it with the URL
        raise DataError(f"{url}: download failed ({error})") from error
    finally:
        tmp.unlink(missing_ok=True)


def npm_integrity(raw: bytes) -> str:
    """The checksum npm records for a package file ("dist.integrity"): SHA-512 in base64."""
    return "sha512-" + base64.b64encode(hashlib.sha512(raw).digest()).decode()


def locate(spec: DatasetSpec, stem: str, data_dir=None, allow_download: bool = True) -> Path:
    dirs = candidate_dirs(spec, data_dir)
    for directory in dirs:
        found = _find_file(directory, stem)
        if found is not None:
            return found
    if allow_download and not (data_dir or os.environ.get("IMGJAX_DATA_DIR")):
        return download(f"{spec.url}{stem}.gz", cache_dir(spec.name) / f"{stem}.gz", spec.sha256.get(stem))
    raise DataError(
        f"{spec.name}: {stem} not found in {', '.join(map(str, dirs))}. Install Debian's "
        f"dataset-{spec.name} package, set IMGJAX_DATA_DIR, or allow the download."
    )


def load_split(split: str, dataset: str = "fashion-mnist", data_dir=None, allow_download: bool = True) -> Split:
    """Load the ``train`` (60k) or ``test`` (10k) split as uint8 images and int32 labels."""
    spec = DATASETS[dataset]
    arrays = []
    for stem in SPLIT_FILES[split]:
        path = locate(spec, stem, data_dir, allow_download)
        array, raw = read_idx(path)
        expected = spec.sha256.get(stem)
        if expected is not None and hashlib.sha256(raw).hexdigest() != expected:
            raise DataError(f"{path}: contents do not match the {spec.name} checksum for {stem}")
        arrays.append(array)
    images, labels = arrays
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{spec.name} {split}: {images.shape} images do not match {labels.shape} labels")
    return Split(images=images, labels=labels.astype(np.int32), classes=spec.classes)


# Training images the loop holds out (one fixed draw for every family and seed): the per-epoch
# figures and every recipe or default choice are measured on them, never on the test set.
HELD_OUT_IMAGES = 5_000


def hold_out(split: Split, count: int) -> tuple[Split, Split]:
    """``split`` divided into the images to train on and ``count`` held-out ones, chosen by a fixed
    seeded draw; each part keeps the original order. ``count`` 0 trains on the whole split."""
    if not 0 <= count <= len(split) // 2:
        raise DataError(f"cannot hold out {count} of {len(split)} training images (at most half)")
    held = np.zeros(len(split), bool)
    held[np.random.default_rng(0).permutation(len(split))[:count]] = True
    part = lambda keep: dataclasses.replace(split, images=split.images[keep], labels=split.labels[keep])
    return part(~held), part(held)


def data_available(dataset: str = "fashion-mnist", data_dir=None) -> bool:
    """True when both splits can be found locally (no download attempted)."""
    spec = DATASETS[dataset]
    return all(
        any(_find_file(d, stem) for d in candidate_dirs(spec, data_dir))
        for files in SPLIT_FILES.values() for stem in files
    )


# ----------------------------------------------------------------------------- batches

def to_float(images: np.ndarray) -> np.ndarray:
    """(N, H, W) uint8 -> (N, H, W, 1) float32 in [0, 1]; colour (N, H, W, 3) keeps its channels."""
    scaled = images.astype(np.float32) / 255.0
    return scaled[..., None] if images.ndim == 3 else scaled


def batches(split: Split, batch_size: int, seed: int, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Full batches for one epoch in the split's order (``Split.epoch_order``): ((B, H, W, C) float32
    in [0, 1], (B,) int32 labels, or (B, 2) with a second label: ``Split.labels_at``).

    The order depends only on (seed, epoch), so a resumed run sees the same batches. The last partial
    batch is dropped so every step has one compiled shape.
    """
    order = split.epoch_order(np.random.default_rng([seed, epoch]))
    for start in range(0, len(order) - batch_size + 1, batch_size):
        index = order[start:start + batch_size]
        yield to_float(split.images[index]), split.labels_at(index)


def steps_per_epoch(split: Split, batch_size: int) -> int:
    return len(split) // batch_size
