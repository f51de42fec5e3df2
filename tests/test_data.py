import gzip
import hashlib
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from conftest import write_idx

from imgjax import data


def test_parse_idx_round_trip(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    for compress in (False, True):
        path = write_idx(tmp_path / f"x{compress}-idx3-ubyte", images, compress)
        array, raw = data.read_idx(path)
        np.testing.assert_array_equal(array, images)
        assert len(raw) == 16 + images.size


def test_truncated_idx_names_the_file(tmp_path):
    path = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(data.DataError, match="train-images-idx3-ubyte.*truncated"):
        data.read_idx(path)


def test_wrong_magic_and_garbage_gzip(tmp_path):
    bad = tmp_path / "labels-idx1-ubyte"
    bad.write_bytes(b"\x00\x00\x0d\x01" + (5).to_bytes(4, "big") + b"\x00" * 5)  # float type: not ours
    with pytest.raises(data.DataError, match="not an IDX file"):
        data.read_idx(bad)
    broken = tmp_path / "x-idx1-ubyte.gz"
    broken.write_bytes(gzip.compress(b"\x00" * 100)[:20])
    with pytest.raises(data.DataError, match="x-idx1-ubyte.gz"):
        data.read_idx(broken)


def test_explicit_dir_loads_and_mismatch_is_reported(tiny_dataset, tmp_path):
    split = data.load_split("train", "mnist", data_dir=tiny_dataset)
    assert split.images.shape == (256, 28, 28) and split.labels.dtype == np.int32
    # The same files presented as Fashion-MNIST fail its checksum, naming the file.
    with pytest.raises(data.DataError, match="train-images-idx3-ubyte.*checksum"):
        data.load_split("train", "fashion-mnist", data_dir=tiny_dataset)
    with pytest.raises(data.DataError, match="not found"):
        data.load_split("train", "mnist", data_dir=tmp_path / "empty")


def test_batches_are_shuffled_per_epoch_and_deterministic(tiny_dataset):
    split = data.load_split("train", "mnist", data_dir=tiny_dataset)
    first = [y for _, y in data.batches(split, 32, seed=1, epoch=0)]
    again = [y for _, y in data.batches(split, 32, seed=1, epoch=0)]
    other_epoch = [y for _, y in data.batches(split, 32, seed=1, epoch=1)]
    assert len(first) == 8 and all(len(y) == 32 for y in first)
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))
    assert not np.array_equal(np.concatenate(first), np.concatenate(other_epoch))
    assert sorted(np.concatenate(first)) == sorted(split.labels)  # a permutation: every image once
    images, _ = next(data.batches(split, 4, 0, 0))
    assert images.shape == (4, 28, 28, 1) and images.dtype == np.float32 and 0 <= images.min() <= images.max() <= 1


def test_hold_out_keeps_a_fixed_disjoint_part_of_the_training_images(tiny_dataset):
    split = data.load_split("train", "mnist", data_dir=tiny_dataset)
    # Tag each image by its index so the parts can be traced back to the split.
    tagged = data.Split(np.arange(len(split), dtype=np.int64)[:, None, None] * np.ones((1, 28, 28), np.int64), split.labels)
    trained_on, held_out = data.hold_out(tagged, 64)
    ids = lambda part: part.images[:, 0, 0]
    assert len(trained_on) == 192 and len(held_out) == 64
    assert sorted(np.concatenate([ids(trained_on), ids(held_out)])) == list(range(256))
    assert np.all(np.diff(ids(trained_on)) > 0) and np.all(np.diff(ids(held_out)) > 0)  # original order kept
    np.testing.assert_array_equal(ids(data.hold_out(tagged, 64)[1]), ids(held_out))  # the same draw every time
    np.testing.assert_array_equal(held_out.labels, split.labels[ids(held_out)])
    everything, nothing = data.hold_out(tagged, 0)
    assert len(nothing) == 0
    np.testing.assert_array_equal(ids(everything), np.arange(256))
    with pytest.raises(data.DataError, match="at most half"):
        data.hold_out(tagged, 129)


@pytest.fixture
def local_server(tmp_path):
    """A static HTTP server on localhost serving tmp_path/'served'."""
    root = tmp_path / "served"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_download_verifies_checksum_and_leaves_nothing_on_mismatch(local_server, tmp_path):
    root, url = local_server
    labels = np.arange(10, dtype=np.uint8)
    write_idx(root / "labels-idx1-ubyte", labels, compress=True)
    raw = gzip.decompress((root / "labels-idx1-ubyte.gz").read_bytes())
    target = tmp_path / "cache" / "labels-idx1-ubyte.gz"

    with pytest.raises(data.DataError, match="checksum mismatch"):
        data.download(url + "labels-idx1-ubyte.gz", target, sha256="0" * 64)
    assert not target.exists() and list(target.parent.iterdir()) == []

    with pytest.raises(data.DataError, match="download failed"):
        data.download(url + "missing.gz", target, sha256=None)
    assert list(target.parent.iterdir()) == []

    data.download(url + "labels-idx1-ubyte.gz", target, sha256=hashlib.sha256(raw).hexdigest())
    np.testing.assert_array_equal(data.read_idx(target)[0], labels)


def test_download_is_used_when_nothing_is_local(local_server, tmp_path, monkeypatch):
    root, url = local_server
    for stem, array in (("t10k-images-idx3-ubyte", np.zeros((3, 28, 28))), ("t10k-labels-idx1-ubyte", np.arange(3))):
        write_idx(root / stem, array.astype(np.uint8), compress=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("IMGJAX_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "SYSTEM_DIR", tmp_path / "no-system")
    monkeypatch.setitem(data.DATASETS, "mnist", data.DatasetSpec("mnist", url, data.MNIST.classes, {}))
    split = data.load_split("test", "mnist")
    assert len(split) == 3
    assert (tmp_path / "xdg" / "imgjax" / "mnist" / "t10k-labels-idx1-ubyte.gz").is_file()


@pytest.mark.realdata
def test_real_fashion_mnist(fashion_test, fashion_train):
    assert fashion_train.images.shape == (60000, 28, 28) and fashion_test.images.shape == (10000, 28, 28)
    assert np.bincount(fashion_test.labels).tolist() == [1000] * 10
