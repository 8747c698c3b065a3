"""RunConfig: dict/YAML round trip, recipe values, path parsing, clear errors."""
from pathlib import Path

import pytest

from xlda.model import ModelConfig
from xlda.training.config import ConfigError, DataConfig, RunConfig, TrainingConfig, language_of_prefix

RECIPES = Path(__file__).resolve().parents[2] / "examples" / "trillion7b"


def test_dict_and_yaml_round_trip(tmp_path):
    cfg = RunConfig(model=ModelConfig(num_layers=3))
    cfg.data.paths = {"en": ["/d/c_en_text_document"]}
    cfg.data.xlda_beta = {"en": 0.5, "ko": 0.5}
    cfg.optimizer.lr = 1e-3
    again = RunConfig.from_dict(cfg.to_dict())
    assert again == cfg
    cfg.to_yaml(tmp_path / "r.yaml")
    assert RunConfig.from_yaml(tmp_path / "r.yaml") == cfg


@pytest.mark.parametrize("name", ["tiny", "proxy_1p8b", "trillion_7b"])
def test_recipes_load(name):
    cfg = RunConfig.from_yaml(RECIPES / f"{name}.yaml")
    assert cfg.model.seq_length == cfg.data.seq_length
    assert cfg.scheduler.lr_decay_style == "WSD"
    assert cfg.optimizer.min_lr == pytest.approx(0.1 * cfg.optimizer.lr)


def test_trillion_7b_recipe_values():
    cfg = RunConfig.from_yaml(RECIPES / "trillion_7b.yaml")
    m = cfg.model
    assert (m.num_layers, m.hidden_size, m.num_attention_heads, m.ffn_hidden_size) == (32, 4096, 32, 11008)
    assert (m.vocab_size, m.seq_length, m.mtp_num_layers) == (128128, 4096, 1)
    assert m.normalization == "RMSNorm" and m.swiglu and m.untie_embeddings_and_output_weights
    assert m.position_embedding_type == "rope"
    assert cfg.scheduler.lr_warmup_iters == 2000
    assert cfg.wsd_decay_iters() == cfg.training.train_iters // 10  # final 10%
    assert cfg.data.annealing and cfg.data.annealing_multilingual_multiplier == 3.0


def test_unknown_keys_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"section 'optimizer': unknown key\(s\) \['lrr'\]"):
        RunConfig.from_dict({"optimizer": {"lrr": 1.0}})
    with pytest.raises(ConfigError, match=r"unknown section\(s\) \['optimiser'\]"):
        RunConfig.from_dict({"optimiser": {}})
    p = tmp_path / "bad.yaml"
    p.write_text("model: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: invalid YAML"):
        RunConfig.from_yaml(p)
    with pytest.raises(ConfigError, match="not found"):
        RunConfig.from_yaml(tmp_path / "missing.yaml")


def test_data_path_styles_merge():
    d = DataConfig(paths={"en": ["/a/x_en_text_document"]},
                   data_path=["0.3", "/b/y_ko_text_document", "0.7", "/b/y_en_text_document"])
    assert d.language_paths() == {"en": ["/a/x_en_text_document", "/b/y_en_text_document"],
                                  "ko": ["/b/y_ko_text_document"]}
    # the annealing spec defaults to the main one; its own spec replaces it
    assert d.language_paths(annealing=True) == d.language_paths()
    d.annealing_data_path = ["/c/z_ja_text_document"]
    assert d.language_paths(annealing=True) == {"ja": ["/c/z_ja_text_document"]}
    assert language_of_prefix("out/corpus_zh_text_document") == "zh"
    with pytest.raises(ConfigError, match="cannot read its language"):
        language_of_prefix("out/corpus.bin")
    with pytest.raises(ConfigError, match="pairs"):
        DataConfig(data_path=["0.3", "/b/y_ko_text_document", "0.7"]).language_paths()


def test_validation_messages():
    cfg = RunConfig(model=ModelConfig())
    with pytest.raises(ConfigError, match="no training data"):
        cfg.validate()
    cfg.data.mock = True
    cfg.training.train_iters = 10
    cfg.scheduler.lr_warmup_iters = 10
    with pytest.raises(ConfigError, match="--lr-warmup-iters 10 must be < decay iterations 10"):
        cfg.validate()
    with pytest.raises(ConfigError, match="not divisible"):
        TrainingConfig(micro_batch_size=3, global_batch_size=8).num_microbatches(1)
    assert TrainingConfig(micro_batch_size=2, global_batch_size=8).num_microbatches(2) == 2


def test_data_config_builds_dataset_config():
    d = DataConfig(mock=True, seq_length=64, xlda_alpha=1.0, split="90,10,0")
    c = d.build(seed=7)
    assert c.mock and c.sequence_length == 64 and c.random_seed == 7
    assert c.languages == ("en", "ko", "ja", "zh")


def test_retired_keys_of_a_saved_run_config_still_load(tmp_path):
    """ckpt_format and log_mask_density never changed a run and are gone; a run_config.yaml
    written before still loads, and a new one has neither."""
    old = tmp_path / "run_config.yaml"
    old.write_text("checkpoint:\n  ckpt_format: torch_dist\n  save: /x\n"
                   "logging:\n  log_mask_density: false\n  log_interval: 5\n")
    cfg = RunConfig.from_yaml(old)
    assert cfg.checkpoint.save == "/x" and cfg.logging.log_interval == 5
    assert "ckpt_format" not in cfg.to_yaml() and "log_mask_density" not in cfg.to_yaml()
    bad = tmp_path / "typo.yaml"
    bad.write_text("logging:\n  log_intervall: 5\n")
    with pytest.raises(ConfigError, match="unknown key.*log_intervall"):
        RunConfig.from_yaml(bad)


def test_ckpt_format_flag_is_accepted_and_checked():
    from xlda.cli.pretrain import _resolve

    cfg, _, _ = _resolve(["--mock-data", "--seq-length", "64", "--ckpt-format", "torch_dist"])
    assert cfg.checkpoint.save is None
    with pytest.raises(ConfigError, match="--ckpt-format: invalid choice: 'torch'"):
        _resolve(["--mock-data", "--ckpt-format", "torch"])
