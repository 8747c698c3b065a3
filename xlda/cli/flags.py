"""What every xlda command line shares: exact flag names only, "did you mean" for a misspelt one,
help that shows each flag's default, and one error policy: a user error is one
``<tool>: error: ...`` line on stderr and exit code 2 (a traceback means a bug)."""
from __future__ import annotations

import argparse
import difflib
from typing import Iterable, Sequence


def unknown_flag_lines(unknown: Sequence[str], known: Iterable[str]) -> list[str]:
    """One line per unknown argument, with the closest known flags when there are any."""
    known = list(known)
    flags = [u for u in unknown if u.startswith("-")]
    lines = []
    for u in flags or unknown:
        close = difflib.get_close_matches(u.split("=")[0], known, n=3)
        lines.append(f"  {u}" + (f"   (did you mean {', '.join(close)}?)" if close else ""))
    return lines


def unknown_flags_message(unknown: Sequence[str], known: Iterable[str],
                          what: str = "the flags") -> str:
    """The one-line form: ``unknown argument(s): --x (did you mean --y?); --z; run with --help
    for <what>``."""
    items = [" ".join(x.split()) for x in unknown_flag_lines(unknown, known)]
    return f"unknown argument(s): {'; '.join(items)}; run with --help for {what}"


def tool_name(prog: str) -> str:
    """``curate.py`` -> ``curate`` (what an error line starts with)."""
    import os

    name = os.path.basename(prog.split()[0]) if prog else "xlda"  # a subcommand's: its tool
    return name[:-3] if name.endswith(".py") else name


def say_error(tool: str, message) -> None:
    """The one error line on stderr: ``<tool>: error: <message>`` (a message's own line breaks,
    e.g. a library's, folded so the line stays one)."""
    import sys

    print(f"{tool}: error: {' '.join(str(message).split())}", file=sys.stderr)


def fail(tool: str, message, code: int = 2):
    """Say the error line and exit (``code`` 2: bad input, 1: a run that failed)."""
    say_error(tool, message)
    raise SystemExit(code)


def known_flags(parser: argparse.ArgumentParser) -> list[str]:
    """Every --flag of ``parser`` and of its subcommands (a subcommand's flags follow its name)."""
    out = []
    for a in parser._actions:
        out += [s for s in a.option_strings if s.startswith("--")]
        if isinstance(a, argparse._SubParsersAction):
            for sub in a.choices.values():
                out += known_flags(sub)
    return out


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults after each optional flag's help; the description's examples kept as written."""

    def _get_help_string(self, action):
        # no second default where the help already says it
        if action.required or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class FlagParser(argparse.ArgumentParser):
    """An ArgumentParser without abbreviations whose unknown flags are reported (with suggestions)
    before anything else, so `--ouput-prefix` is not reported as a missing `--output-prefix`;
    every parse error is one ``<tool>: error: ...`` line, exit 2 (no usage block)."""

    def __init__(self, *args, **kw):
        kw.setdefault("allow_abbrev", False)
        kw.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kw)

    def parse_args(self, args=None, namespace=None):
        import sys

        argv = list(sys.argv[1:] if args is None else args)
        known = set(known_flags(self))
        unknown = []
        for a in argv:
            if a == "--":
                break
            if a.startswith("--") and a.split("=", 1)[0] not in known:
                unknown.append(a)
        if unknown:
            self.error(unknown_flags_message(unknown, known))
        return super().parse_args(argv, namespace)

    def error(self, message):
        if "--help" not in message:
            message = f"{message}; run with --help for the flags"
        fail(tool_name(self.prog), message)
