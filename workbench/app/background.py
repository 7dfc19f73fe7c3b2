"""Long library calls that a Stop button can leave promptly.

Gradio cancels a generator handler only between two of its steps, and a step that is one long
library call (an edit: seconds to minutes) cannot be interrupted. :func:`in_background` runs the
call in its own thread and yields a no-op update every ``tick`` seconds, so a cancel is answered
within a tick; the call itself then finishes in the background and its result is dropped (every
model change it makes is undone in its own ``finally``, under the model pool's lock).

>>> steps = in_background(sum, [1, 2, 3], skip=("no change",), tick=0.01)
>>> ticks = []
>>> try:
...     while True:
...         ticks.append(next(steps))
... except StopIteration as done:
...     done.value
6
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Generator

log = logging.getLogger(__name__)


def in_background(fn: Callable[..., Any], *args, skip: Any = None, tick: float = 0.25,
                  **kwargs) -> Generator[Any, None, Any]:
    """Run ``fn(*args, **kwargs)`` in a thread; yield ``skip`` every ``tick`` seconds until it is done,
    then return its result (``outcome = yield from in_background(...)``) or raise its exception."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the generator, which re-raises it
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name=f"workbench-{getattr(fn, '__name__', 'job')}", daemon=True).start()
    try:
        while not done.wait(tick):
            yield skip
    except GeneratorExit:  # cancelled: the call goes on and its result is dropped
        log.info("%s cancelled; it finishes in the background and its result is dropped",
                 getattr(fn, "__name__", "job"))
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]
