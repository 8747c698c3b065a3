"""Every flag of every command a user runs says what it does in --help (issue: build_tokenizer.py
and curate.py had flags with no help at all)."""
import argparse
import runpy
import sys

import pytest

from xlda.paths import REPO_ROOT

SCRIPTS = ["tools/build_packing_index.py", "tools/build_tokenizer.py", "tools/curate.py",
           "tools/make_posttrain_data.py", "tools/memory_plan.py", "tools/merge_datasets.py",
           "tools/preprocess_data.py", "tools/train_quality_classifier.py",
           "tools/checkpoint/convert.py", "pretrain_trillion.py", "posttrain.py"]
MODULES = ["xlda.ablation.cli", "xlda.demo", "xlda.slurm"]


class _Parser(Exception):
    pass


def _grab(self, *a, **k):
    raise _Parser(self)


def flags_without_help(p: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    out = []
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                out += flags_without_help(sub, f"{prefix}{name} ")
        elif a.option_strings and a.dest != "help" and not (a.help or "").strip():
            out.append(prefix + a.option_strings[-1])
    return out


def _parser_of(monkeypatch, run, target) -> argparse.ArgumentParser:
    """The parser the command builds, caught where it starts parsing (nothing else runs)."""
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", _grab)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", _grab)
    monkeypatch.setattr(sys, "argv", [target])
    with pytest.raises(_Parser) as e:
        run(target, run_name="__main__")
    return e.value.args[0]


def test_the_scan_sees_a_flag_without_help():
    p = argparse.ArgumentParser()
    p.add_argument("--a", help="says")
    p.add_argument("--b")
    sub = p.add_subparsers().add_parser("go")
    sub.add_argument("--c", help=" ")
    assert flags_without_help(p) == ["--b", "go --c"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_flag_of_a_script_has_help(script, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    p = _parser_of(monkeypatch, runpy.run_path, str(REPO_ROOT / script))
    assert flags_without_help(p) == []


@pytest.mark.parametrize("module", MODULES)
def test_every_flag_of_a_module_command_has_help(module, monkeypatch):
    p = _parser_of(monkeypatch, runpy.run_module, module)
    assert flags_without_help(p) == []
