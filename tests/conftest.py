"""Shared fixtures. Real-data tests use the real Fashion-MNIST files and emoji art sets; without
them they skip with a reason, unless IMGJAX_REQUIRE_DATA=1 (set by CI, which installs the data), where they fail."""

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from imgjax import data


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """Write a uint8 array as an IDX file (magic 0x0000080N, big-endian dimensions)."""
    raw = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw += array.astype(np.uint8).tobytes()
    if compress:
        raw, path = gzip.compress(raw), path.with_name(path.name + ".gz")
    path.write_bytes(raw)
    return path


@pytest.fixture
def tiny_dataset(tmp_path):
    """A small MNIST-format dataset (train 256, test 64): bright squares whose size and place depend
    on the label, so models can learn it in a few steps. Returns the folder."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 256), ("t10k", 64)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = (rng.random((n, 28, 28)) * 40).astype(np.uint8)
        for i, label in enumerate(labels):
            top = 2 + 2 * label
            images[i, top:top + 8, 4 + label:12 + 2 * label] = 220
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", images)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", labels)
    return tmp_path


def _require_data() -> bool:
    return os.environ.get("IMGJAX_REQUIRE_DATA") == "1"


@pytest.fixture(scope="session")
def fashion_test():
    if not data.data_available("fashion-mnist"):
        if _require_data():
            pytest.fail("IMGJAX_REQUIRE_DATA=1 but Fashion-MNIST was not found (apt install dataset-fashion-mnist)")
        pytest.skip("Fashion-MNIST not found locally (install Debian's dataset-fashion-mnist or set IMGJAX_DATA_DIR)")
    return data.load_split("test", allow_download=False)


@pytest.fixture(scope="session")
def fashion_train(fashion_test):
    return data.load_split("train", allow_download=False)


@pytest.fixture(scope="session")
def emoji_pictures():
    """Every emoji picture with the emoji's codes and names (``emoji.load_all``), from the cache."""
    from imgjax import emoji
    if not emoji.data_available():
        if _require_data():
            pytest.fail("IMGJAX_REQUIRE_DATA=1 but the emoji art sets were not found (imgjax data emoji)")
        pytest.skip("the emoji art sets are not in the cache (run `imgjax data emoji`)")
    return emoji.load_all(allow_download=False)
