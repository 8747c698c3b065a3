"""The Megatron-style CLI: recipe + flag overrides, unknown flags, printed/saved config."""
from pathlib import Path

import pytest
import yaml

from xlda.cli.pretrain import main, resolve
from xlda.training.config import ConfigError

TINY = str(Path(__file__).resolve().parents[2] / "examples" / "trillion7b" / "tiny.yaml")


def test_flags_override_recipe():
    cfg, _ = resolve(["--config", TINY, "--mock-data", "--lr", "0.01", "--min-lr", "0.001",
                      "--seq-length", "64", "--tensor-model-parallel-size", "2",
                      "--xlda-mask", "document", "--attention-backend", "thd",
                      "--lr-wsd-decay-iters", "7", "--xlda-beta", "en=0.5,ko=0.5",
                      "--data-path", "/d/c_en_text_document", "/d/c_ko_text_document",
                      "--mtp-num-layers", "1", "--disable-bias-linear", "--bf16",
                      "--xlda-max-kv-expansion", "3.5", "--xlda-kv-cap-action", "raise"])
    assert cfg.optimizer.lr == 0.01 and cfg.optimizer.min_lr == 0.001
    assert cfg.model.seq_length == cfg.data.seq_length == 64
    assert cfg.parallel.tensor_model_parallel_size == 2
    assert cfg.model.attention_mask_type == "document" and cfg.model.attention_backend == "thd"
    assert cfg.scheduler.lr_wsd_decay_iters == 7
    assert cfg.data.xlda_beta == {"en": 0.5, "ko": 0.5}
    assert cfg.data.language_paths() == {"en": ["/d/c_en_text_document"], "ko": ["/d/c_ko_text_document"]}
    assert cfg.model.mtp_num_layers == 1 and not cfg.model.add_bias_linear and cfg.model.bf16
    assert cfg.data.xlda_max_kv_expansion == 3.5 and cfg.data.xlda_kv_cap_action == "raise"
    # untouched recipe values stay
    assert cfg.training.train_iters == 40 and cfg.model.hidden_size == 128


def test_data_path_weights_become_the_language_mixture():
    cfg, _ = resolve(["--config", TINY, "--data-path", "0.2", "/d/c_en_text_document", "0.3",
                      "/d/c_ko_text_document", "0.5", "/d/x_ko_text_document"])
    assert cfg.data.xlda_alpha == 0.0 and cfg.data.xlda_beta == {"en": 0.2, "ko": 0.8}
    assert cfg.data.language_paths() == {
        "en": ["/d/c_en_text_document"], "ko": ["/d/c_ko_text_document", "/d/x_ko_text_document"]}


def test_unknown_flag_is_a_clear_error(capsys):
    with pytest.raises(ConfigError, match=r"--lr-wsd-decay-itres .*did you mean --lr-wsd-decay-iters"):
        resolve(["--config", TINY, "--mock-data", "--lr-wsd-decay-itres", "3"])
    with pytest.raises(ConfigError, match="--lr-wsd"):  # no silent prefix matching
        resolve(["--config", TINY, "--mock-data", "--lr-wsd", "3"])
    assert main(["--config", TINY, "--mock-data", "--bogus"]) == 2
    assert "unknown argument" in capsys.readouterr().err


def test_bad_values_exit_2(capsys):
    assert main(["--config", TINY]) == 2  # the tiny recipe has no data paths
    assert "no training data" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="argument --xlda-mask: invalid choice: 'bogus'"):
        resolve(["--config", TINY, "--mock-data", "--xlda-mask", "bogus"])
    assert main(["--config", TINY, "--mock-data", "--xlda-max-kv-expansion", "0.5"]) == 2
    assert "--xlda-max-kv-expansion must be >= 1" in capsys.readouterr().err


def test_print_config_is_loadable_yaml(capsys):
    assert main(["--config", TINY, "--mock-data", "--train-iters", "20", "--print-config"]) == 0
    d = yaml.safe_load(capsys.readouterr().out)
    assert d["training"]["train_iters"] == 20 and d["data"]["mock"] is True
