"""The shared loop: it trains each family, writes pictures and checkpoints, and resumes."""

import dataclasses

import numpy as np
import pytest

from imgjax import ae, checkpoint
from imgjax.family import load_family
from imgjax.train import TrainConfig, fit


def _config(name, tiny_dataset, out, epochs=2):
    return TrainConfig(family=name, epochs=epochs, batch_size=32,
                       learning_rate=load_family(name).defaults["learning_rate"],
                       dataset="mnist", data_dir=str(tiny_dataset), out=str(out), held_out=64)


@pytest.mark.parametrize("name", ["cnn", "ae", pytest.param("gan", marks=pytest.mark.slow), "encoder"])
def test_fit_writes_pictures_checkpoints_and_history(name, tiny_dataset, tmp_path, monkeypatch):
    if name == "encoder":  # it inverts its dataset's shipped GAN: the garments' has the tiny set's shape
        shipped = tmp_path / "shipped"
        (shipped / "mnist").mkdir(parents=True)
        for family in ("gan", "cnn"):
            for suffix in (".safetensors", ".json"):
                (shipped / "mnist" / f"{family}{suffix}").symlink_to(checkpoint.CHECKPOINT_DIR / f"{family}{suffix}")
        monkeypatch.setattr(checkpoint, "CHECKPOINT_DIR", shipped)
    card = fit(load_family(name), _config(name, tiny_dataset, tmp_path / name), log=lambda *_: None)
    out = tmp_path / name
    assert (out / "epoch_001.png").is_file() and (out / "epoch_002.png").is_file()
    assert len((out / "history.jsonl").read_text().splitlines()) == 2
    assert card["epochs_trained"] == 2 and card["family"] == name
    checkpoint.load_model(name, out / f"{name}.safetensors")  # verifies SHA-256 and shapes


def test_training_reads_no_test_image_and_measures_on_held_out_ones(tiny_dataset, tmp_path, monkeypatch):
    """Every per-epoch figure, which recipes are chosen on, comes from training images held out."""
    from imgjax import data
    read, seen = [], []
    load_split = data.load_split
    monkeypatch.setattr(data, "load_split", lambda split, *a, **k: read.append(split) or load_split(split, *a, **k))
    family = load_family("cnn")

    def evaluate(training, held_out, trained_on):
        seen.append((len(held_out), len(trained_on)))
        return family.evaluate(training, held_out, trained_on)

    card = fit(dataclasses.replace(family, evaluate=evaluate), _config("cnn", tiny_dataset, tmp_path, epochs=1),
               log=lambda *_: None)
    assert read == ["train"]
    assert seen == [(64, 192)]
    assert card["train_config"]["held_out"] == 64 and "held_out_accuracy" in card["train_metrics"]


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_weights(tiny_dataset, tmp_path, monkeypatch):
    family = load_family("cnn")
    fit(family, _config("cnn", tiny_dataset, tmp_path / "straight", epochs=3), log=lambda *_: None)

    class Interrupted(Exception):
        pass

    calls = {"n": 0}

    def evaluate_then_die(training, test, train):
        calls["n"] += 1
        if calls["n"] == 2:  # killed during epoch 2's evaluation: epoch 1 is the last one saved
            raise Interrupted
        return family.evaluate(training, test, train)

    broken = dataclasses.replace(family, evaluate=evaluate_then_die)
    with pytest.raises(Interrupted):
        fit(broken, _config("cnn", tiny_dataset, tmp_path / "resumed", epochs=3), log=lambda *_: None)
    messages = []
    fit(family, _config("cnn", tiny_dataset, tmp_path / "resumed", epochs=3), log=messages.append)
    assert any("resuming cnn" in m and "after epoch 1" in m for m in messages)

    straight = checkpoint.state_arrays(checkpoint.load_model("cnn", tmp_path / "straight" / "cnn.safetensors")[0])
    resumed = checkpoint.state_arrays(checkpoint.load_model("cnn", tmp_path / "resumed" / "cnn.safetensors")[0])
    assert straight.keys() == resumed.keys()
    for key in straight:
        np.testing.assert_allclose(resumed[key], straight[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_resume_refuses_a_different_batch_size(tiny_dataset, tmp_path):
    family = load_family("ae")
    fit(family, _config("ae", tiny_dataset, tmp_path, epochs=1), log=lambda *_: None)
    changed = dataclasses.replace(_config("ae", tiny_dataset, tmp_path, epochs=1), batch_size=16)
    with pytest.raises(checkpoint.CheckpointError, match="--batch-size 32"):
        fit(family, changed, log=lambda *_: None)


@pytest.mark.slow
def test_init_from_starts_at_a_checkpoints_weights(tiny_dataset, tmp_path):
    """`--init-from`: a run starts from a serving checkpoint's weights (at learning rate 0 it keeps them)."""
    family = load_family("ae")
    fit(family, _config("ae", tiny_dataset, tmp_path / "first", epochs=1), log=lambda *_: None)
    weights = tmp_path / "first" / "ae.safetensors"
    still = dataclasses.replace(_config("ae", tiny_dataset, tmp_path / "second", epochs=1), learning_rate=0.0,
                                init_from=str(weights))
    card = fit(family, still, log=lambda *_: None)
    assert (tmp_path / "second" / "ae.safetensors").read_bytes() == weights.read_bytes()
    first = checkpoint.read_card(weights)  # the card says what the start was, should its file be replaced
    assert card["started_from"]["sha256"] == first["sha256"] and card["started_from"]["epochs_trained"] == 1
    with pytest.raises(checkpoint.CheckpointError):
        fit(family, dataclasses.replace(still, out=str(tmp_path / "third"), init_from=str(tmp_path / "none.safetensors")),
            log=lambda *_: None)


@pytest.mark.slow
def test_init_from_grows_a_deeper_autoencoder_that_computes_the_same(tiny_dataset, tmp_path):
    """`--set depths=... --init-from`: the layers the checkpoint lacks start as the identity, so the
    grown model restores exactly as the checkpoint's did; a family without that rule refuses."""
    family = load_family("ae")
    fit(family, _config("ae", tiny_dataset, tmp_path / "first", epochs=1), log=lambda *_: None)
    weights = tmp_path / "first" / "ae.safetensors"
    deeper = dataclasses.replace(family, model_config=dataclasses.replace(family.model_config, depths=(3, 5, 3)))
    still = dataclasses.replace(_config("ae", tiny_dataset, tmp_path / "grown", epochs=1), learning_rate=0.0,
                                init_from=str(weights))
    card = fit(deeper, still, log=lambda *_: None)
    assert tuple(card["config"]["depths"]) == (3, 5, 3)
    images = np.random.default_rng(0).random((4, 28, 28, 1), np.float32)
    (shallow, _), (grown, _) = (checkpoint.load_model("ae", path) for path in (weights, tmp_path / "grown" / "ae.safetensors"))
    assert len(grown.encode_quarter) == len(shallow.encode_quarter) + 2
    np.testing.assert_array_equal(ae.restore(grown, images), ae.restore(shallow, images))
    with pytest.raises(checkpoint.CheckpointError, match="no array named"):
        fit(dataclasses.replace(deeper, grow_layer=None), dataclasses.replace(still, out=str(tmp_path / "refused")),
            log=lambda *_: None)
