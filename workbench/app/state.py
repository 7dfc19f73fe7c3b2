"""Per-browser isolation: each browser session keeps its edits as values; the shared model never
stays edited between events.

The model weights are shared by everyone connected to the app. A browser session's edits live
in its own :class:`Workspace` (held in a ``gr.State``: values, never models). Every event that
touches a model goes through :meth:`ModelPool.use`: under one lock it applies that session's
edits, runs, and restores the original weights in a ``finally``. Invariant: between events
every pooled model equals its checkpoint (``weights_hash() == original_hash``).
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from workbench.app import backends
from workbench.errors import WorkbenchError
from workbench.report import Section
from workbench.report import table as as_table

log = logging.getLogger(__name__)

MAX_LOG = 200  # report entries kept per browser session (oldest dropped first)


@dataclass(frozen=True)
class EditEntry:
    """One edit a browser session made: a label for people and the weight change as a value."""

    id: int
    label: str
    value: tuple  # the editing.Edit values (weight updates) to apply, oldest first
    summary: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Workspace:
    """Everything one browser session owns: its model choice, its edits and its report log."""

    model: str
    edits: tuple[EditEntry, ...] = ()
    log: tuple[Section, ...] = ()  # report sections (workbench.report), oldest first
    next_id: int = 1

    def with_model(self, spec: str) -> "Workspace":
        """Switch model: edits belong to one model, so they are dropped."""
        return dataclasses.replace(self, model=spec, edits=())

    def add_edit(self, label: str, value: Any, summary: dict | None = None) -> tuple["Workspace", EditEntry]:
        entry = EditEntry(self.next_id, label, value, summary or {})
        return dataclasses.replace(self, edits=self.edits + (entry,), next_id=self.next_id + 1), entry

    def undo(self, edit_id: int | None = None) -> "Workspace":
        """Drop edit ``edit_id`` (the latest one when None)."""
        if not self.edits:
            raise WorkbenchError("there is no edit to undo")
        if edit_id is None:
            edit_id = self.edits[-1].id
        if all(e.id != edit_id for e in self.edits):
            raise WorkbenchError(f"no edit #{edit_id} in this session (edits: "
                                 f"{', '.join('#' + str(e.id) for e in self.edits)})")
        return dataclasses.replace(self, edits=tuple(e for e in self.edits if e.id != edit_id))

    def command(self, subcommand: str, **options) -> str | None:
        """The CLI command that reproduces a result on this browser's model, or None while edits
        are applied (the command line has no way to say which)."""
        from workbench.cli.options import command_line

        return None if self.edits else command_line(subcommand, self.model, **options)

    def record(self, title: str, text: str = "", table=(), images=(), command: str | None = None,
               tables=()) -> "Workspace":
        """Add a result to this browser's report (``table``: rows, first the header; ``tables``: more
        of them; ``images``: PNG bytes; ``text``: Markdown)."""
        found = ((as_table(table),) if table else ()) + tuple(as_table(t) for t in tables if t)
        entry = Section(title, "app", text, found, tuple(images), command)
        return dataclasses.replace(self, log=(self.log + (entry,))[-MAX_LOG:])


class ModelPool:
    """The loaded models (a few, least recently used evicted) and the one lock that guards them."""

    def __init__(self, default: str, loader: Callable[[str], Any], capacity: int = 2, offered: tuple[str, ...] = ()):
        self.default = default
        # the only models a browser may load: named by whoever started the app, never by a client
        self.offered = tuple(dict.fromkeys((default, *offered, "factworld")))
        self._loader = loader
        self._capacity = max(1, capacity)
        self._sessions: OrderedDict[str, Any] = OrderedDict()
        self._original_hash: dict[str, str] = {}
        self._lock = threading.RLock()

    def workspace(self) -> Workspace:
        """A fresh workspace on the default model (the initial value of each browser's state)."""
        return Workspace(model=self.default)

    def get(self, spec: str):
        """The session of ``spec``, loading it (and evicting the least recently used) if needed."""
        spec = (spec or "").strip()
        if not spec:
            raise WorkbenchError("no model given: pass factworld, a Hugging Face id or a local directory")
        if spec not in self.offered:
            raise WorkbenchError(f"this app offers only {', '.join(self.offered)}; "
                                 "start it with --offer MODEL to add another")
        with self._lock:
            if spec in self._sessions:
                self._sessions.move_to_end(spec)
                return self._sessions[spec]
            session = self._loader(spec)
            self._original_hash[spec] = session.weights_hash()
            self._sessions[spec] = session
            while len(self._sessions) > self._capacity:
                evicted = next(s for s in self._sessions if s != spec)
                log.info("unloading %s (pool holds %d models)", evicted, self._capacity)
                del self._sessions[evicted]
                self._original_hash.pop(evicted, None)
            return session

    def original_hash(self, spec: str) -> str:
        """Weights hash of ``spec`` as loaded from its checkpoint."""
        with self._lock:
            self.get(spec)
            return self._original_hash[spec]

    @contextmanager
    def use(self, workspace: Workspace, with_edits: bool = True) -> Iterator[Any]:
        """The workspace's model with its edits applied, for the duration of one event.

        Holds the pool lock throughout; the edits are undone in a ``finally`` whatever happens.
        """
        with self._lock:
            session = self.get(workspace.model)
            edits = [edit for entry in workspace.edits for edit in entry.value] if with_edits else []
            with backends.applied(session, edits):
                yield session
