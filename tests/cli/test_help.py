"""``--help`` explains every flag, with its default (issue 12.1)."""
import argparse

from xlda.cli.pretrain import FLAGS, build_parser



def _actions(parser):
    return [a for a in parser._actions if a.option_strings and a.dest != "help"]


def test_every_pretrain_flag_has_help_and_value_flags_a_default():
    parser = build_parser()
    actions = _actions(parser)
    assert {s for a in actions for s in a.option_strings} == {"--config", "--print-config",
                                                               *FLAGS}
    for a in actions:
        flag = a.option_strings[0]
        assert a.help and len(a.help) > 15, f"{flag} has no help text"
        takes_value = a.nargs != 0 and not isinstance(a, (argparse._StoreTrueAction,
                                                          argparse._StoreConstAction))
        if takes_value and flag != "--config":
            assert "(default: " in a.help, f"{flag}: no default shown"


def test_help_text_of_xlda_flags():
    helps = {a.option_strings[0]: a.help % {} for a in _actions(build_parser())}
    assert "(1 - alpha) * beta_l (default: 0.3)" in helps["--xlda-alpha"]
    assert "lang=weight pairs, e.g. en=0.4,ko=0.2,ja=0.2,zh=0.2" in helps["--xlda-beta"]
    assert "switches language (default: 0.5)" in helps["--xlda-rho"]
    assert "(default: None)" in helps["--xlda-max-kv-expansion"]
    assert "flag (count and log) or raise (stop the run) (default: flag)" \
        in helps["--xlda-kv-cap-action"]
    assert "no annealing" in helps["--no-annealing"]
    assert "Do not load optimizer or rng state" in helps["--finetune"]
    assert "run_config.yaml and metrics.jsonl" in helps["--run-dir"]
    assert "Megatron's 'weight prefix weight prefix ...'" in helps["--data-path"]
    # Megatron-LM's own words where the flag is Megatron's
    assert helps["--num-layers"] == "Number of transformer layers (default: 2)"
    assert helps["--lr-warmup-iters"].startswith("Number of iterations to linearly warmup")


def test_help_text_is_grouped_and_shows_choices():
    text = build_parser().format_help()
    assert "--xlda-kv-cap-action {flag,raise}" in text
    assert "data (RunConfig.data):" in text and "model (RunConfig.model):" in text


def test_memory_plan_help_shows_defaults_and_gpu_count(capsys):
    from xlda.cli import memory_plan

    try:
        memory_plan.main(["--help"])
    except SystemExit as e:
        assert e.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--num-nodes x --gpus-per-node GPUs (default 1 x 8)" in text
    assert "GPUs per node; the world is num-nodes x this. (default: 8)" in text
    assert "(default: 80.0)" in text
