"""How a `realm` command ends on SIGINT or SIGTERM (Ctrl-C, `timeout`, a service manager): the run it was
executing stops (Dagster interrupts the step; a training segment saves where it stopped), and the command
ends with one line saying how to go on, never a traceback or a campaign that trains on unheard."""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """A stop signal ended the command; `run` names the run it stopped ("1a2b3c4d canceled"), if any."""

    def __init__(self, signum: int, run: str | None = None) -> None:
        super().__init__(signum)
        self.signum, self.run = signum, run


@contextmanager
def signals_seen() -> Iterator[list[int]]:
    """The stop signals that reach this process inside the block (filled in on exit), whoever handles them.

    Dagster installs its own handlers while it executes a run: a signal inside a step interrupts the step,
    one between steps is only noted. Python writes every signal's number to the wakeup fd either way."""
    seen: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return
    read, write = os.pipe()
    os.set_blocking(read, False)
    os.set_blocking(write, False)
    previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    try:
        yield seen
    finally:
        signal.set_wakeup_fd(previous)
        try:
            data = os.read(read, 4096)
        except BlockingIOError:
            data = b""
        os.close(read)
        os.close(write)
        seen.extend(n for n in data if n in STOP_SIGNALS)


def ends_on_stop_signals(command: Callable[..., Any]) -> Callable[..., Any]:
    """Make a hero's command end on SIGINT/SIGTERM with one line on how to resume, exit 128 + the signal.

    SIGTERM is raised like Ctrl-C (Dagster does the same inside a run); a second signal while the line is
    printed ends the process at once."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        hero = kwargs.get("hero") or "tiny"

        def raise_stopped(signum: int, frame: object) -> None:
            raise Stopped(signum)

        previous = {s: signal.signal(s, raise_stopped) for s in STOP_SIGNALS}
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt as exc:
            signum = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
            run = f" (run {exc.run})" if isinstance(exc, Stopped) and exc.run else ""
            click.echo(
                f"{hero}: stopped by {signal.Signals(signum).name}{run}; its last save is kept: "
                f"`realm campaign --hero {hero}` resumes from it",
                err=True,
            )
            sys.exit(128 + signum)
        finally:
            for s, h in previous.items():
                signal.signal(s, h if h is not None else signal.SIG_DFL)

    return wrapper
