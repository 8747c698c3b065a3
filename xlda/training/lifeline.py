"""Child processes of a training rank die with it, even when the rank is killed with SIGKILL.

megatron-core's torch_dist save starts a ``spawn`` Manager server (the results queue of its
writer workers, kept for the life of the process) and ``fork``s short-lived writer workers; the
Manager keeps the multiprocessing resource tracker alive through its inherited pipe. After a
``kill -9`` of the rank nothing tells them to stop: they stay, orphaned, holding memory.

On Linux each such child asks the kernel for SIGKILL when its parent dies
(``prctl(PR_SET_PDEATHSIG)``); elsewhere a daemon thread polls the parent pid. The resource
tracker then sees EOF on its pipe and exits by itself.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1
_installed = False
_fork_from_main_thread = False


def die_with_parent(parent_pid: int) -> None:
    """Make this process exit when ``parent_pid`` (its parent) dies. Call first thing in a child."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os._exit(1)
            return
    threading.Thread(target=_watch, args=(parent_pid,), daemon=True, name="xlda-lifeline").start()


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)


def _before_fork() -> None:
    global _fork_from_main_thread
    _fork_from_main_thread = threading.current_thread() is threading.main_thread()


def _after_fork_in_child() -> None:
    # PR_SET_PDEATHSIG fires when the *thread* that forked exits: only tie children forked by
    # the main thread (a worker thread may end long before the process does).
    if _fork_from_main_thread:
        die_with_parent(os.getppid())


def install() -> None:
    """In a training process: every child it forks from now on, and megatron-core's spawned
    results-queue Manager, dies with it. Idempotent."""
    global _installed
    if _installed:
        return
    _installed = True
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
    _own_results_queue()


def _own_results_queue() -> None:
    """Create megatron-core's writer results queue ourselves, in a Manager whose server process
    runs :func:`die_with_parent` first (megatron-core would create the same queue lazily)."""
    try:
        from megatron.core.dist_checkpointing.strategies import filesystem_async as fa
    except ImportError:
        return
    if getattr(fa, "_results_queue", "absent") is not None:
        return  # already created, or a megatron-core without this global
    import multiprocessing as mp
    from multiprocessing.managers import SyncManager

    manager = SyncManager(ctx=mp.get_context("spawn"))
    manager.start(initializer=die_with_parent, initargs=(os.getpid(),))
    fa._results_queue = manager.Queue()
    fa._xlda_manager = manager  # keep it referenced: its finalizer would stop the server
