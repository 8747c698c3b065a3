"""How the data tools end: a one-line error for bad input, and SIGTERM (scancel, a job's time
limit) or Ctrl-C unwinding like an exception so partial outputs are removed, with a message."""
from __future__ import annotations

import signal
import sys


class Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler; a KeyboardInterrupt so every cleanup path handles it."""


def _on_sigterm(signum, frame):
    raise Terminated()


def run_tool(fn, errors: tuple) -> tuple[int, object]:
    """-> (exit code, fn's result). Call from the main thread."""
    old = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return 0, fn()
    except errors as e:
        print(f"error: {e}", file=sys.stderr)
        return 1, None
    except Terminated:
        print("terminated (SIGTERM): partial outputs removed; rerun the same command to redo it", file=sys.stderr)
        return 143, None
    except KeyboardInterrupt:
        print("interrupted: partial outputs removed", file=sys.stderr)
        return 130, None
    finally:
        signal.signal(signal.SIGTERM, old)
