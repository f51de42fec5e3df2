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
    assert main(["train", "ae", "--epochs", "1", "--batch-size", "32", "--dataset", "mnist",
                 "--data-dir", str(tiny_dataset), "--out", str(tmp_path)]) == 0
    assert "psnr_gaussian_0.2" in capsys.readouterr().out
    assert (tmp_path / "ae.safetensors").is_file() and (tmp_path / "epoch_001.png").is_file()
