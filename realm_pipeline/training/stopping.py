"""SIGINT and SIGTERM as a request to stop a training segment between two steps; a second one insists.

The first signal sets a flag `train_segment` reads before each step (it then saves where it stopped and
raises SegmentInterrupted); the second calls `at_once`, which raises wherever the code is. Ctrl-C, a
service manager's SIGTERM, `timeout`, and Dagster's run termination (a SIGINT to the process running the
step) all arrive this way.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Set by the first stop signal; call it (`should_stop`) to ask whether one came."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self) -> bool:
        """True once a stop signal arrived."""
        return self.signum is not None

    @property
    def name(self) -> str:
        """The signal's name (SIGINT, SIGTERM), 'a stop request' before one came."""
        return signal.Signals(self.signum).name if self.signum is not None else "a stop request"


@contextmanager
def stop_on_signals(at_once: Callable[[int], NoReturn]) -> Iterator[StopRequest]:
    """Inside, the first SIGINT/SIGTERM sets the yielded StopRequest and a second calls `at_once(signum)`;
    the previous handlers come back on exit. Off the main thread (where Python delivers no signal) the
    request is only ever set by hand."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, frame: object) -> None:
        if request.signum is None:
            request.signum = signum
        else:
            at_once(signum)

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield request
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
