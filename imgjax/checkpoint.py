"""Saving and loading NNX state as safetensors (no pickle), written atomically.

Two kinds of file:
  * a *training state* (``state.safetensors``): every array of the model(s) and optimizer(s) plus
    the epoch and step in the metadata, enough to resume after an interruption;
  * *serving weights* (``<family>.safetensors``) with a JSON card beside them (``<family>.json``):
    architecture config, dataset, measured metrics, training command, and the SHA-256 of the weights
    file, which the loader verifies before reading.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx
from safetensors import SafetensorError
from safetensors.numpy import load as load_safetensors_bytes
from safetensors.numpy import save as save_safetensors_bytes


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not match the model it is loaded into."""


def atomic_write(path: Path, data: bytes, sync: bool = True) -> None:
    """Write to a temporary file in the same folder, then rename: a crash never leaves half a file,
    and a reader of the old file reads it whole. ``sync``: flushed to disk before the rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            if sync:
                out.flush()
                os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; these files are shared and committed
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "/"))
        else:
            flat[name] = value
    return flat


def _fill(template: dict, arrays: dict[str, np.ndarray], source: str, prefix: str = "", fill_missing=None) -> dict:
    filled = {}
    for key, value in template.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            filled[key] = _fill(value, arrays, source, name + "/", fill_missing)
            continue
        array = arrays.get(name)
        if array is None and fill_missing is not None:
            array = fill_missing(name, tuple(value.shape))
        if array is None:
            raise CheckpointError(f"{source}: no array named {name!r}: the file was written for another model")
        if array.shape != tuple(value.shape):
            raise CheckpointError(f"{source}: {name!r} has shape {array.shape}, the model expects {tuple(value.shape)}")
        filled[key] = jax.numpy.asarray(array, dtype=value.dtype)
    return filled


def state_arrays(objects) -> dict[str, np.ndarray]:
    """All arrays of an NNX object (or tuple of objects) as {"path/to/leaf": ndarray}."""
    return {k: np.asarray(_local_copy(v)) for k, v in _flatten(nnx.to_pure_dict(nnx.state(objects))).items()}


def _local_copy(value):
    """The whole of an array that, in a multi-host job, is not wholly addressable from one process:
    a replicated one is read from this process's copy, a split one gathered from every process."""
    if isinstance(value, jax.Array) and not value.is_fully_addressable:
        if value.sharding.is_fully_replicated:
            return value.addressable_data(0)
        from jax.experimental import multihost_utils
        return multihost_utils.process_allgather(value, tiled=True)
    return value


def save_state(path: Path, objects, metadata: dict[str, Any] | None = None) -> bytes:
    """Save every array of ``objects`` to ``path`` atomically; returns the bytes written."""
    meta = {k: json.dumps(v) for k, v in (metadata or {}).items()}
    data = save_safetensors_bytes(state_arrays(objects), metadata=meta)
    atomic_write(Path(path), data)
    return data


def load_state(path: Path, objects, fill_missing=None) -> dict[str, Any]:
    """Load arrays from ``path`` into ``objects`` in place; returns the metadata. An array the file
    lacks is an error, unless ``fill_missing(name, shape)`` gives one for it (not None)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read checkpoint ({error.strerror})") from error
    try:
        arrays = load_safetensors_bytes(data)
        metadata = _read_metadata(data)
    except (SafetensorError, ValueError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: corrupt checkpoint ({error})") from error
    fill_state(objects, arrays, str(path), fill_missing)
    return metadata


def fill_state(objects, arrays: dict[str, np.ndarray], source: str, fill_missing=None) -> None:
    """Put ``arrays`` ({"path/to/leaf": ndarray}, as ``state_arrays`` gives) into ``objects`` in place;
    ``source`` names where they came from in errors."""
    state = nnx.state(objects)
    nnx.replace_by_pure_dict(state, _fill(nnx.to_pure_dict(state), arrays, source, fill_missing=fill_missing))
    nnx.update(objects, state)


def _read_metadata(data: bytes) -> dict[str, Any]:
    header_size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + header_size])
    return {k: json.loads(v) for k, v in header.get("__metadata__", {}).items()}


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def card_path(weights_path: Path) -> Path:
    return Path(weights_path).with_suffix(".json")


def save_serving(weights_path: Path, model, card: dict[str, Any]) -> dict[str, Any]:
    """Write serving weights and their JSON card (with the weights' SHA-256) atomically."""
    data = save_state(weights_path, model)
    card = {**card, "weights": Path(weights_path).name, "sha256": hashlib.sha256(data).hexdigest()}
    atomic_write(card_path(weights_path), (json.dumps(card, indent=2) + "\n").encode())
    return card


def read_card(weights_path: Path) -> dict[str, Any]:
    path = card_path(weights_path)
    try:
        return json.loads(path.read_text())
    except OSError as error:
        raise CheckpointError(f"{path}: checkpoint card missing ({error.strerror})") from error
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: checkpoint card is not valid JSON ({error})") from error


def verify(weights_path: Path) -> dict[str, Any]:
    """Check that the weights file exists and matches the SHA-256 in its card; returns the card."""
    weights_path = Path(weights_path)
    card = read_card(weights_path)
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path}: checkpoint weights file missing")
    with open(weights_path, "rb") as f:
        if f.read(24) == b"version https://git-lfs":
            raise CheckpointError(f"{weights_path}: is a Git LFS pointer, not the weights: run `git lfs pull`")
    digest = sha256_file(weights_path)
    if digest != card.get("sha256"):
        raise CheckpointError(
            f"{weights_path}: SHA-256 {digest[:12]}… does not match its card's {str(card.get('sha256'))[:12]}…: "
            "the file is corrupt or was replaced"
        )
    return card


def update_card(weights_path: Path, **fields) -> dict[str, Any]:
    card = {**read_card(weights_path), **fields}
    atomic_write(card_path(weights_path), (json.dumps(card, indent=2) + "\n").encode())
    return card


# ----------------------------------------------------------------------------- serving models

CHECKPOINT_DIR = Path(os.environ.get("IMGJAX_CHECKPOINTS", Path(__file__).resolve().parent.parent / "checkpoints"))


def default_weights(family_name: str, dataset: str = "fashion-mnist") -> Path:
    """The shipped checkpoint of a family: garments' at the top of ``CHECKPOINT_DIR``, another
    dataset's in its folder there (``checkpoints/emoji/cnn.safetensors``)."""
    folder = CHECKPOINT_DIR if dataset == "fashion-mnist" else CHECKPOINT_DIR / dataset
    return folder / f"{family_name}.safetensors"


def config_from_dict(config_type, values: dict):
    """Rebuild a config dataclass from its JSON form (JSON lists back to tuples)."""
    fields = {f.name for f in dataclasses.fields(config_type)}
    return config_type(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in fields})


def load_companion(directory: Path, info: dict | None, card_name: str, what: str, command: str) -> dict[str, np.ndarray]:
    """The arrays of a file an evaluation wrote beside a checkpoint (``info``: its card's entry,
    with the file's name and SHA-256), checked against that SHA-256; ``command`` writes ``what``."""
    from safetensors.numpy import load_file
    if info is None:
        raise CheckpointError(f"{directory}/{card_name}: no {what}; run `{command}`")
    path = directory / info["file"]
    if not path.is_file() or sha256_file(path) != info["sha256"]:
        raise CheckpointError(f"{path}: missing, or its SHA-256 does not match {card_name}")
    return load_file(path)


def load_if_present(family_name: str, dataset: str = "fashion-mnist"):
    """The shipped model of ``family_name`` on ``dataset``, or None when its checkpoint does not exist yet."""
    path = default_weights(family_name, dataset)
    return load_model(family_name, path)[0] if path.exists() else None


def load_model(family_name: str, weights_path: Path | None = None):
    """Build the family's serving model from the card's config, verify the SHA-256 and load the
    weights. Returns (model, card)."""
    from .family import load_family
    path = Path(weights_path or default_weights(family_name))
    card = verify(path)
    if card.get("family") != family_name:
        raise CheckpointError(f"{path}: holds a {card.get('family')!r} model, not {family_name!r}")
    family = load_family(family_name)
    config = config_from_dict(type(family.model_config), card["config"])
    # Built abstractly (shapes only): initialising weights only to overwrite them costs seconds of
    # compiling one small XLA program per initialiser.
    model = nnx.eval_shape(lambda: family.build_model(config))
    load_state(path, model)
    return model, card
