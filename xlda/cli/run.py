"""How the data tools end: a one-line error for bad input, and SIGTERM (scancel, a job's time
limit) or Ctrl-C unwinding like an exception so partial outputs are removed, with a message."""
from __future__ import annotations

import signal
import sys
from xlda.cli.flags import say_error


class Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler; a KeyboardInterrupt so every cleanup path handles it."""


def _on_sigterm(signum, frame):
    raise Terminated()


def run_tool(tool: str, run, errors: tuple, prepare=None) -> tuple[int, object]:
    """-> (exit code, run's result). ``prepare()`` checks the input and sets up (its errors: one
    ``<tool>: error:`` line, exit 2, nothing done); ``run(prepared)`` (or ``run()``) does the
    work (its errors: the same line, exit 1). Call from the main thread."""
    old = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        if prepare is not None:
            try:
                ready = prepare()
            except errors as e:
                say_error(tool, e)
                return 2, None
            return 0, run(ready)
        return 0, run()
    except errors as e:
        say_error(tool, e)
        return 1, None
    except Terminated:
        print(f"{tool}: terminated (SIGTERM): partial outputs removed; rerun the same command to "
              "redo it", file=sys.stderr)
        return 143, None
    except KeyboardInterrupt:
        print(f"{tool}: interrupted: partial outputs removed", file=sys.stderr)
        return 130, None
    finally:
        signal.signal(signal.SIGTERM, old)
