"""Ctrl-C and SIGTERM: stop a command where it can be resumed, and say so in one line.

`stop_on_signals()` turns SIGINT and SIGTERM into `Interrupted` (a `BaseException`, so no
library's `except Exception` takes it for a failure) in the main thread; the stages add where
they were (`Interrupted.where`: "at epoch 3 of 10") and the command line prints one line and
exits 130 or 143, as shells expect (128 + the signal's number). Some libraries run Python code
inside their own C++ calls and turn any exception raised there into their own error
(TensorFlow's, then KerasTuner's failed trial): `pending()` still tells that a signal came,
and `raise_if_interrupted` raises it again at the next safe point.
"""

import contextlib
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list = []


class Interrupted(BaseException):
    """SIGINT (Ctrl-C) or SIGTERM arrived while a command ran."""

    def __init__(self, signum, where=None):
        super().__init__(signum, where)
        self.signum, self.where = signum, where

    @property
    def exit_status(self):
        return 128 + int(self.signum)

    @property
    def signal_name(self):
        return "Ctrl-C" if self.signum == signal.SIGINT else signal.Signals(self.signum).name

    def at(self, where):
        """The same interruption, saying where it happened (the first `where` given wins)."""
        return self if self.where else Interrupted(self.signum, where)


def _handler(signum, frame):
    _received.append(signum)
    raise Interrupted(signum)


def pending():
    """The signal received since `stop_on_signals` began, or None."""
    return _received[0] if _received else None


def raise_if_interrupted(where=None):
    """Raise `Interrupted` if a signal arrived (and something swallowed its exception)."""
    if _received:
        raise Interrupted(_received[0], where)


@contextlib.contextmanager
def stop_on_signals():
    """SIGINT and SIGTERM raise `Interrupted` while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = {number: signal.signal(number, _handler) for number in SIGNALS}
    try:
        yield
    except KeyboardInterrupt:  # a SIGINT handled before ours was installed, or re-raised as one
        raise Interrupted(signal.SIGINT) from None
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
