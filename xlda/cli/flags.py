"""What every xlda command line shares: exact flag names only, "did you mean" for a misspelt one,
and help that shows each flag's default."""
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


def known_flags(parser: argparse.ArgumentParser) -> list[str]:
    return [s for a in parser._actions for s in a.option_strings if s.startswith("--")]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults after each optional flag's help; the description's examples kept as written."""

    def _get_help_string(self, action):
        # no second default where the help already says it
        if action.required or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class FlagParser(argparse.ArgumentParser):
    """An ArgumentParser without abbreviations whose unknown flags are reported (with suggestions)
    before anything else, so `--ouput-prefix` is not reported as a missing `--output-prefix`."""

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
            self.error("unrecognized argument(s):\n" + "\n".join(unknown_flag_lines(unknown, known)))
        return super().parse_args(argv, namespace)
