import pytest

from imgjax.cli import build_parser, main


def test_parser_maps_flags_to_train_config():
    args = build_parser().parse_args(["train", "gan", "--epochs", "3", "--batch-size", "16", "--seed", "4"])
    assert (args.family, args.epochs, args.batch_size, args.seed) == ("gan", 3, 16, 4)


def test_unknown_family_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["train", "vae"])
    assert "invalid choice" in capsys.readouterr().err


def test_train_command_end_to_end(tiny_dataset, tmp_path, capsys):
    common = ["train", "ae", "--epochs", "1", "--batch-size", "32", "--dataset", "mnist", "--data-dir", str(tiny_dataset)]
    # The default 5,000 held-out images are more than half of these 256: one clear line, nothing written.
    assert main([*common, "--out", str(tmp_path / "refused")]) == 2
    assert "cannot hold out 5000 of 256 training images" in capsys.readouterr().err
    assert not (tmp_path / "refused" / "ae.safetensors").exists()
    assert main([*common, "--held-out", "64", "--out", str(tmp_path)]) == 0
    assert "psnr_gaussian_0.2" in capsys.readouterr().out
    assert (tmp_path / "ae.safetensors").is_file() and (tmp_path / "epoch_001.png").is_file()


def test_set_overrides_model_config_fields_with_their_types():
    from imgjax.gan import GANConfig
    from imgjax.train import override_config
    config = override_config(GANConfig(), ["ema_decay=0.9995", "generator_widths=128,64,32", "r1_interval=4"])
    assert (config.ema_decay, config.generator_widths, config.r1_interval) == (0.9995, (128, 64, 32), 4)
    assert isinstance(config.r1_interval, int) and all(isinstance(w, int) for w in config.generator_widths)
    assert config.latent_dim == GANConfig().latent_dim  # the rest untouched
    for bad, message in [("emma_decay=0.9", "FIELD one of latent_dim"), ("ema_decay", "FIELD=VALUE"),
                         ("generator_widths=128,64", "3 comma-separated ints like 96,48,24"),
                         ("r1_interval=2.5", "an int like 8"), ("ema_decay=slow", "a float like 0.999"),
                         ("decay_shape=step", "decay_shape=step: expected linear or cosine")]:
        with pytest.raises(ValueError, match=message):
            override_config(GANConfig(), [bad])


@pytest.mark.slow
def test_train_command_records_a_set_config_and_refuses_a_bad_one(tiny_dataset, tmp_path, capsys):
    import json
    common = ["--epochs", "1", "--batch-size", "32", "--dataset", "mnist", "--data-dir", str(tiny_dataset),
              "--held-out", "64"]
    assert main(["train", "ae", *common, "--out", str(tmp_path / "bad"), "--set", "widths=32"]) == 2
    assert "widths takes 2 comma-separated ints" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    assert main(["train", "ae", *common, "--out", str(tmp_path), "--set", "widths=16,32"]) == 0
    card = json.loads((tmp_path / "ae.json").read_text())
    assert card["config"]["widths"] == [16, 32] and "--set widths=16,32" in card["command"]


def test_help_names_every_family_every_option_and_the_version(capsys):
    """Plain text (no RST markup), every family in train and eval, a help line for every option."""
    from imgjax import __version__
    from imgjax.family import NAMES
    parser = build_parser()
    assert "``" not in parser.format_help() and "{" not in parser.format_help()
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"imgjax {__version__}"
    commands = parser._subparsers._group_actions[0]  # argparse keeps its subcommands there
    for name, command in commands.choices.items():
        text = command.format_help()
        if name in ("train", "eval"):
            assert all(family in text for family in NAMES), name
        for action in command._actions:
            assert action.help, f"imgjax {name} {action.option_strings or action.dest} has no help"
