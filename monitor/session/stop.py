"""One stop request per process, set by SIGINT or SIGTERM, so that a call always ends as a call:
spurts closed, finals transcribed, `call_end` sent, the recording closed.

The handlers go in as the command line starts (before the heavy imports and the model load), so
that a stop at any moment is a clean stop: a call that has not begun yet begins and ends at once.
Commands that are not calls give the signals back to Python's defaults with `release()`.
"""

from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stop:
    """`flag` is set when the process was asked to stop. (A plain class: this module is imported
    before anything else, and every millisecond before the handlers are in is a window for a
    signal to kill the process the old way.)"""

    def __init__(self, flag: threading.Event | None = None):
        self.flag = flag or threading.Event()

    @classmethod
    def on_signals(cls) -> "Stop":
        """The process's stop request, with SIGINT and SIGTERM handlers setting it (installed once)."""
        global _PROCESS
        if _PROCESS is None:
            _PROCESS = cls()
            for sig in SIGNALS:
                signal.signal(sig, lambda *_: _PROCESS.flag.set())
        return _PROCESS

    @staticmethod
    def release() -> bool:
        """Give SIGINT and SIGTERM back to Python's defaults; True when a stop came in meanwhile."""
        global _PROCESS
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        asked, _PROCESS = _PROCESS is not None and _PROCESS.flag.is_set(), None
        return asked


_PROCESS: Stop | None = None
