"""The Lab's runs (imgjax/lab.py): knobs, the learning rate that follows the time budget, live
updates, pause / step / resume / stop, and the checkpoint a run leaves."""

import jax
import numpy as np
import pytest
from flax import nnx

from imgjax import checkpoint, lab
from imgjax.family import load_family, set_learning_rate
from imgjax.lab import LabConfig, LabRun, model_config, resolved
from imgjax.train import TrainConfig


def test_knobs_reach_the_model_config():
    cnn = model_config(resolved(LabConfig("cnn", width=1.5, augment=True)))
    recipe = lab.recipe("cnn").model_config
    assert cnn.widths == tuple(round(w * 1.5 / 4) * 4 for w in recipe.widths) and cnn.augment
    gan = model_config(resolved(LabConfig("gan", gan_loss="hinge", r1=False, ema=False, width=0.5)))
    assert (gan.loss, gan.r1_gamma, gan.ema_decay) == ("hinge", 0.0, 0.0)
    assert gan.generator_widths == tuple(round(w * 0.5 / 4) * 4 for w in lab.recipe("gan").model_config.generator_widths)
    ae = model_config(resolved(LabConfig("ae", corruption_shares=(1, 1, 0))))
    assert ae.corruption_shares == (0.5, 0.5, 0.0)
    defaults = resolved(LabConfig("gan"))
    assert (defaults.budget_s, defaults.batch_size) == (lab.recipe("gan").budget_s, lab.recipe("gan").batch_size)


def test_each_dataset_has_a_recipe_per_family_sized_to_its_pictures():
    for family in lab.FAMILIES:
        config = model_config(resolved(LabConfig(family, dataset="emoji")))
        assert config.channels == 3
    cnn, gan = (model_config(resolved(LabConfig(family, dataset="emoji"))) for family in ("cnn", "gan"))
    assert (cnn.side, cnn.num_classes, cnn.num_styles) == (32, 8, 3)  # the group and art-set heads
    assert (gan.side, gan.conditions, gan.tone_stride) == (32, 168, 24)  # (group, art set) pairs in 7 tones
    assert gan.diff_augment and gan.class_loss_weight
    assert model_config(resolved(LabConfig("gan"))).channels == 1


@pytest.mark.parametrize("knobs, named", [({"family": "rnn"}, "family"), ({"width": 3.0}, "width"),
                                          ({"dataset": "cats"}, "dataset"),
                                          ({"family": "gan", "gan_loss": "wasserstein"}, "GAN loss"),
                                          ({"family": "ae", "corruption_shares": (0, 0, 0)}, "corruption mix")])
def test_bad_knobs_are_refused_by_name(knobs, named):
    with pytest.raises(ValueError, match=named):
        resolved(LabConfig(**knobs))


@pytest.mark.parametrize("name", ["cnn", "ae", "gan"])
def test_the_learning_rate_follows_the_schedule_by_the_fraction_done(name):
    """A run with a time budget reads its family's schedule at the fraction of the budget spent: the
    same rates a run of a fixed number of steps gets at the same fraction of its steps."""
    family = load_family(name)
    config = TrainConfig(family=name, epochs=1, batch_size=32, learning_rate=1e-3)
    schedule = family.schedule(family.model_config, config, 1000)
    for fraction in (0.0, 0.1, 0.3, 0.5, 0.9, 1.0):
        assert family.learning_rate_at(family.model_config, config, fraction) == pytest.approx(
            float(schedule(int(fraction * 1000))), rel=0.02, abs=1e-7)
    assert family.learning_rate_at(family.model_config, config, 1.0) < 1e-4  # every family ends low


def test_setting_the_learning_rate_changes_what_a_step_does(tiny_dataset):
    family = load_family("ae")
    config = TrainConfig(family="ae", epochs=1, batch_size=8, learning_rate=1e-3)
    training = family.create(family.model_config, config, None)
    images = np.random.default_rng(0).random((8, 28, 28, 1)).astype(np.float32)
    before = jax.tree.map(np.array, nnx.state(training.model, nnx.Param))
    set_learning_rate(training, 0.0)
    family.train_step(training, images, np.zeros(8, np.int32), jax.random.key(0))
    unchanged = jax.tree.map(np.array, nnx.state(training.model, nnx.Param))
    set_learning_rate(training, 1e-2)
    family.train_step(training, images, np.zeros(8, np.int32), jax.random.key(1))
    changed = jax.tree.map(np.array, nnx.state(training.model, nnx.Param))
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(unchanged)))
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(unchanged), jax.tree.leaves(changed)))


def _run(family, tiny_dataset, tmp_path, commands=list, held_out=0, **knobs):
    updates = []
    config = LabConfig(family, budget_s=knobs.pop("budget_s", 1.5), batch_size=32, **knobs)
    final = LabRun(config, tmp_path / family, report=updates.append, commands=commands, data_dir=tiny_dataset,
                   dataset="mnist", held_out=held_out).run()
    return updates, final


@pytest.mark.parametrize("family", ["cnn", "ae", pytest.param("gan", marks=pytest.mark.slow)])
def test_a_run_reports_as_it_trains_and_leaves_a_checkpoint(family, tiny_dataset, tmp_path):
    updates, final = _run(family, tiny_dataset, tmp_path, r1=False)  # the GAN's R1 variant: one compile less
    assert final.state == "finished", final.message
    assert updates[0].state == "compiling" and updates[-1] is final
    training = [u for u in updates if u.state == "training"]
    assert len(training) >= 2 and [u.step for u in training] == sorted(u.step for u in training)
    assert final.step > training[0].step and final.seconds == pytest.approx(1.5, abs=0.6)
    assert final.curves.ndim == 3 and final.view.ndim in (2, 3) and final.images_per_second > 0
    assert (final.mistakes is not None) == (family == "cnn")
    _, card = checkpoint.load_model(family, final.checkpoint)  # the SHA-256 and shapes check out
    assert card["lab_config"]["family"] == family and card["steps"] == final.step
    assert card["metrics"] == final.card["metrics"] and card["metrics"]  # measured on the test split
    headline = {"cnn": "test_accuracy", "ae": "psnr_gaussian_0.2", "gan": "conditional_accuracy"}[family]
    assert np.isfinite(card["metrics"][headline])


def test_pause_steps_one_at_a_time_then_resume_and_stop(tiny_dataset, tmp_path):
    script = iter([[], ["pause"], [], ["step"], [], ["step"], [], ["resume"], [], ["stop"]])
    updates, final = _run("cnn", tiny_dataset, tmp_path, commands=lambda: next(script, []), budget_s=120)
    paused = [u for u in updates if u.state == "paused"]  # on pausing, then after each single step
    assert len(paused) == 3, [u.state for u in updates]
    assert paused[1].step == paused[0].step + 1 and paused[2].step == paused[1].step + 1
    assert final.state == "stopped" and final.seconds < 60  # stopped, not the budget, ended it
    assert checkpoint.load_model("cnn", final.checkpoint)[1]["steps"] == final.step


def test_a_run_stopped_while_compiling_keeps_no_model(tiny_dataset, tmp_path):
    _, final = _run("cnn", tiny_dataset, tmp_path, commands=lambda: ["stop"], budget_s=120)
    assert final.state == "stopped" and final.checkpoint is None and final.images == 0
    assert "no model was kept" in final.message and not (tmp_path / "cnn").exists()


def test_the_autoencoder_mix_is_checked_for_the_autoencoder_only():
    for family in ("cnn", "gan"):  # the page sends the mix whatever the family
        assert resolved(LabConfig(family, corruption_shares=(0, 0, 0))).family == family
    with pytest.raises(ValueError, match="corruption mix"):
        resolved(LabConfig("ae", corruption_shares=(0, 0, 0)))


def test_a_run_that_fails_says_why(tiny_dataset, tmp_path):
    updates, final = _run("cnn", tiny_dataset, tmp_path, held_out=200)  # more than half the 256 images
    assert final.state == "failed" and "hold out 200" in final.message and updates[-1] is final


def test_widths_scale_and_keep_whole_groups_of_four():
    for width in lab.WIDTHS:
        config = model_config(resolved(LabConfig("ae", width=width)))
        assert all(w % 4 == 0 and w >= 4 for w in config.widths)


@pytest.mark.realdata
@pytest.mark.parametrize("family", ["cnn", pytest.param("gan", marks=pytest.mark.slow)])
def test_a_run_on_emoji_trains_and_shows_it_in_colour(family, emoji_pictures, tmp_path):
    """The Lab on the training emoji: the live view in colour with the eight groups named, and the
    figures on the whole test set (the CNN's balanced accuracy; the GAN named by the emoji classifier)."""
    from imgjax import datasets
    updates = []
    config = LabConfig(family, dataset="emoji", budget_s=1.5, batch_size=32, r1=False)
    final = LabRun(config, tmp_path / family, report=updates.append).run()
    assert final.state == "finished", final.message
    assert final.view.ndim == 3 and final.view.shape[-1] == 3 and final.dataset == "emoji"
    test = datasets.get("emoji").test(None)
    _, card = checkpoint.load_model(family, final.checkpoint)
    assert card["dataset"] == "emoji" and card["config"]["channels"] == 3 and card["test_pictures"] == len(test)
    if family == "cnn":
        assert 0 <= card["metrics"]["test_balanced_accuracy"] <= 1 and final.mistakes.shape[-1] == 3
        assert any("balanced" in name for name in final.figures)
    else:
        assert 0 <= card["metrics"]["conditional_accuracy"] <= 1
