"""What the crash tests of the stores share: a forked writer that inserts one run, one document
per ``insert`` as a RunEngine does, and acknowledges each on a pipe the moment ``insert``
returned; killed with SIGKILL at a chosen moment, it tells exactly what a user was promised."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import event_model

#: Events of the run each writer inserts.
EVENTS = 10_000
DATA_KEYS = {
    "x": {"dtype": "number", "shape": [], "source": "s"},
    "n": {"dtype": "integer", "shape": [], "source": "s"},
}


def _write_run(open_store: Callable[[], Any], round_: int, fd: int) -> None:
    """The writer (a forked child): run ``run-<round_>`` with descriptor ``desc-<round_>``;
    event ``i`` holds ``x = 1.5 i``, ``n = i``; each document acknowledged on ``fd``."""
    store = open_store()
    os.write(fd, b"open\n")
    bundle = event_model.compose_run(uid=f"run-{round_}", time=1.7e9 + round_)
    desc = bundle.compose_descriptor(
        uid=f"desc-{round_}", name="primary", time=1.7e9, data_keys=DATA_KEYS
    )
    store.insert("start", bundle.start_doc)
    os.write(fd, b"start\n")
    store.insert("descriptor", desc.descriptor_doc)
    os.write(fd, b"descriptor\n")
    for i in range(1, EVENTS + 1):
        t = 1.7e9 + i
        event = desc.compose_event(
            uid=f"e{round_}-{i}",
            data={"x": i * 1.5, "n": i},
            timestamps={"x": t, "n": t},
            time=t,
            seq_num=i,
            validate=False,
        )
        store.insert("event", event)
        os.write(fd, b"%d\n" % i)
    store.insert("stop", bundle.compose_stop(uid=f"stop-{round_}", time=1.8e9))
    os.write(fd, b"stop\n")
    store.close()
    os._exit(0)


def run_and_kill(open_store: Callable[[], Any], round_: int, delay: float) -> list[str]:
    """Fork a writer over ``open_store()`` and kill -9 it ``delay`` seconds after its store
    opened; what it acknowledged (``start``, ``descriptor``, event seq_nums, ``stop``)."""
    read, write = os.pipe()
    child = multiprocessing.get_context("fork").Process(
        target=_write_run, args=(open_store, round_, write)
    )
    child.start()
    assert child.pid is not None  # started
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        assert pipe.readline() == b"open\n"
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
        acked = pipe.read().decode().split()
    assert child.exitcode in (-signal.SIGKILL, 0)
    return acked
