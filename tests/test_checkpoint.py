import json

import numpy as np
import pytest
from flax import nnx

from imgjax import ae, checkpoint, cnn, encoder, gan

MODELS = {
    "cnn": (lambda: cnn.Classifier(cnn.CNNConfig(), rngs=nnx.Rngs(1)), cnn.CNNConfig(),
            lambda m, x: cnn.predict_probabilities(m, x)),
    "ae": (lambda: ae.DenoisingAutoencoder(ae.AEConfig(), rngs=nnx.Rngs(1)), ae.AEConfig(),
           lambda m, x: ae.restore(m, x)),
    "gan": (lambda: gan.Generator(gan.GANConfig(), rngs=nnx.Rngs(1)), gan.GANConfig(),
            lambda m, x: gan.generate_images(m, x.reshape(2, -1)[:, :64], np.array([1, 2]))),
    "encoder": (lambda: encoder.Encoder(encoder.EncoderConfig(), rngs=nnx.Rngs(1)), encoder.EncoderConfig(),
                lambda m, x: encoder.encode(m, x)),
}


@pytest.fixture
def saved(tmp_path, request):
    name = request.param
    make, config, _ = MODELS[name]
    model = make()
    # Perturb away from the seed's initial values so a silent no-op load would be caught.
    state = nnx.state(model)
    nnx.update(model, __import__("jax").tree.map(lambda v: v + 0.01, state))
    path = tmp_path / f"{name}.safetensors"
    import dataclasses
    checkpoint.save_serving(path, model, {"family": name, "config": dataclasses.asdict(config)})
    return name, model, path


@pytest.mark.parametrize("saved", list(MODELS), indirect=True)
def test_round_trip_gives_identical_outputs(saved):
    name, model, path = saved
    loaded, card = checkpoint.load_model(name, path)
    x = np.random.default_rng(0).random((2, 28, 28, 1), np.float32)
    apply = MODELS[name][2]
    np.testing.assert_array_equal(np.asarray(apply(model, x)), np.asarray(apply(loaded, x)))
    assert card["sha256"] == checkpoint.sha256_file(path)
    assert path.read_bytes()[:8] != b"\x80\x04\x95"[:3] + b"\x00" * 5  # not a pickle


@pytest.mark.parametrize("saved", ["cnn"], indirect=True)
def test_corrupt_truncated_missing_and_wrong_family(saved, tmp_path):
    name, _, path = saved
    original = path.read_bytes()
    path.write_bytes(original[:100] + bytes([original[100] ^ 0xFF]) + original[101:])
    with pytest.raises(checkpoint.CheckpointError, match=f"{path.name}.*SHA-256"):
        checkpoint.load_model(name, path)
    path.write_bytes(original[: len(original) // 2])
    with pytest.raises(checkpoint.CheckpointError, match=path.name):
        checkpoint.load_model(name, path)
    # A truncated file whose card was updated to match still fails clearly (not a parser traceback).
    checkpoint.update_card(path, sha256=checkpoint.sha256_file(path))
    with pytest.raises(checkpoint.CheckpointError, match=f"{path.name}: corrupt checkpoint"):
        checkpoint.load_model(name, path)
    path.write_bytes(original)
    checkpoint.update_card(path, sha256=checkpoint.sha256_file(path))
    with pytest.raises(checkpoint.CheckpointError, match="not 'ae'"):
        checkpoint.load_model("ae", path)
    path.unlink()
    with pytest.raises(checkpoint.CheckpointError, match="weights file missing"):
        checkpoint.load_model(name, path)
    checkpoint.card_path(path).unlink()
    with pytest.raises(checkpoint.CheckpointError, match="card missing"):
        checkpoint.load_model(name, path)


def test_weights_for_another_architecture_are_refused(tmp_path):
    path = tmp_path / "cnn.safetensors"
    small = cnn.Classifier(cnn.CNNConfig(widths=(8, 8, 8)), rngs=nnx.Rngs(0))
    checkpoint.save_serving(path, small, {"family": "cnn", "config": {"widths": [8, 8, 8]}})
    card = json.loads(checkpoint.card_path(path).read_text())
    card["config"]["widths"] = [32, 64, 128]
    checkpoint.card_path(path).write_text(json.dumps(card))
    with pytest.raises(checkpoint.CheckpointError, match="shape"):
        checkpoint.load_model("cnn", path)


def test_shipped_cards_record_no_absolute_paths():
    """A card travels with its checkpoint: paths in it are relative to its folder."""
    def strings(value):
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []
    for card in sorted(checkpoint.CHECKPOINT_DIR.glob("*.json")):
        found = [s for s in strings(json.loads(card.read_text())) if s.startswith("/") or ":\\" in s]
        assert not found, (card.name, found)
