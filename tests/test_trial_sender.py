"""A trial's sends to Tune made by a thread of its own (sweep/trial_reporter.py `Sender`):
in order, one at a time; an error or Tune's stop met by a send is raised in the loop at its
next call; `wait` returns only once every send handed over is done."""

from __future__ import annotations

import threading
import time

import pytest

from dipddpm.sweep.trial_reporter import Sender


def test_sends_are_made_in_order_off_the_loop_and_wait_waits_for_them():
    out, sender, gate = [], Sender(), threading.Event()
    sender.submit(lambda: (gate.wait(5), out.append(1)))
    sender.submit(lambda: out.append(2))
    assert out == []  # the loop went on while the first send waits
    gate.set()
    sender.wait()
    assert out == [1, 2]
    sender.close()
    sender.thread.join(5)
    assert not sender.thread.is_alive()


def test_an_error_in_a_send_is_raised_in_the_loop_and_later_sends_are_not_made():
    out, sender = [], Sender()
    sender.submit(lambda: 1 / 0)
    time.sleep(0.2)
    with pytest.raises(ZeroDivisionError):
        sender.submit(lambda: out.append("late"))
    with pytest.raises(ZeroDivisionError):
        sender.wait()
    assert out == []
    sender.close()


def test_tune_stopping_the_trial_during_a_send_ends_the_loop_quietly():
    sender = Sender()

    def stopped():
        raise SystemExit(0)  # what Tune's report does to a trial it stops

    sender.submit(stopped)
    with pytest.raises(SystemExit):
        sender.wait()
    with pytest.raises(SystemExit):
        sender.check()
    sender.close()
