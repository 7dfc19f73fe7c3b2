"""Turn library errors into one-line ``gr.Error`` messages: never a traceback in the browser.

A :class:`~workbench.errors.WorkbenchError` is a user mistake and is shown as it is. Anything
else is a bug: it is logged with its traceback on the server and the user sees one line.
Works for plain handlers and for generator handlers (long jobs that stream progress).
"""
from __future__ import annotations

import functools
import inspect
import logging

import gradio as gr

from workbench.errors import WorkbenchError

log = logging.getLogger(__name__)


def _convert(exc: BaseException, name: str) -> gr.Error:
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, WorkbenchError):
        return gr.Error(str(exc), print_exception=False)
    log.exception("internal error in %s", name)
    return gr.Error(f"internal error in {name} ({type(exc).__name__}); the server log has the details",
                    print_exception=False)


def user_errors(fn):
    """Decorate a Gradio handler so every failure reaches the user as a one-line ``gr.Error``."""
    name = fn.__name__
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except (GeneratorExit, KeyboardInterrupt):
                raise
            except Exception as exc:
                raise _convert(exc, name) from None
        return generator_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise _convert(exc, name) from None
    return wrapper


def require(condition: bool, message: str) -> None:
    """Raise a user error with ``message`` unless ``condition`` holds (input checks in handlers)."""
    if not condition:
        raise WorkbenchError(message)
