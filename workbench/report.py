"""Reports: a model card and the experiments run, as one self-contained HTML file.

The one report builder of the workbench: the CLI's ``--report F.html`` and the app's Report tab
both fill a :class:`Report` and call :meth:`Report.render_html` / :meth:`Report.save`. Images
are inlined as base64 PNG ``data:`` URIs and the style sheet is embedded: the file opens
offline and names no external resource. Every section carries the CLI command that reproduces
it. Each result type renders its own :class:`Section` beside its definition (``TraceResult.to_section``,
``SweepResult.to_section``, ...), so this core module knows none of their fields.

>>> card = ModelCard(model="factworld", weights_hash="ab" * 32, n_params=1000)
>>> report = Report("Eiffel Tower", (card,)).add(
...     text_section("Note", "free text", command="workbench info --model factworld"))
>>> html = report.render_html()
>>> "workbench info --model factworld" in html and "abab" in html
True
"""
from __future__ import annotations

import base64
import dataclasses
import html
import importlib.metadata
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from workbench.io import write_text

VERSIONED = ("torch", "transformers", "transformer-lens", "safetensors", "open-weights-workbench")

Table = tuple[tuple[str, ...], ...]  # first row is the header


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that decide the numbers (None: not installed)."""
    out: dict[str, str | None] = {}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def table(rows: Iterable[Sequence[Any]]) -> Table:
    """Rows of anything as a table of strings (first row: the header)."""
    return tuple(tuple("" if c is None else str(c) for c in row) for row in rows)


def num(value, digits: int = 3) -> str:
    """A number as a report shows it: 3 decimals, small values in 3 significant digits, None as a dash.

    >>> num(0.123456), num(1.5e-5), num(None)
    ('0.123', '1.5e-05', '–')
    """
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return str(value)


# ---- the model card ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelCard:
    """What a result was computed on: the checkpoint and its hashes, the hardware, the libraries."""

    model: str
    weights_hash: str | None = None  # of the weights in memory when the card was made
    source_sha256: dict[str, str] = field(default_factory=dict)  # file name -> sha256 of the checkpoint files
    n_params: int | None = None
    architecture: str | None = None
    device: str | None = None
    dtype: str | None = None
    versions: dict[str, str | None] = field(default_factory=library_versions)
    base_weights_hash: str | None = None  # the checkpoint's own weights hash, when edits were applied
    edits: tuple[str, ...] = ()  # edits in the weights when the card was made (labels)
    role: str = ""  # e.g. "base" / "edited" for a diff

    @classmethod
    def from_session(cls, session, role: str = "", base_weights_hash: str | None = None,
                     edits: Sequence[str] | None = None) -> "ModelCard":
        """The card of a loaded :class:`~workbench.session.Session` (hashes its weight files)."""
        info = session.info
        if edits is None:
            edits = [_edit_label(record.edit) for record in getattr(session, "applied_edits", [])]
        return cls(model=session.name, weights_hash=session.weights_hash(), source_sha256=session.source_sha256,
                   n_params=info.n_params, architecture=info.architecture, device=info.device, dtype=info.dtype,
                   base_weights_hash=base_weights_hash, edits=tuple(edits), role=role)

    @classmethod
    def from_checkpoint(cls, spec: str, role: str = "") -> "ModelCard":
        """The card of a checkpoint that is not loaded (sha256 of its weight files only)."""
        from workbench.loading import resolve_source, sha256_file

        source = resolve_source(spec)
        return cls(model=spec, source_sha256={p.name: sha256_file(p) for p in source.weight_files()}, role=role)

    def rows(self) -> Table:
        rows = [("model", self.model)]
        for name, value in (("architecture", self.architecture), ("parameters", self.n_params and f"{self.n_params:,}"),
                            ("device / dtype", self.device and f"{self.device} / {self.dtype}"),
                            ("weights hash (in memory)", self.weights_hash),
                            ("weights hash (checkpoint)", self.base_weights_hash)):
            if value:
                rows.append((name, str(value)))
        rows += [(f"sha256 {name}", sha) for name, sha in self.source_sha256.items()]
        if self.edits:
            rows.append(("edits in the weights", "; ".join(self.edits)))
        rows += [(f"version {name}", version or "not installed") for name, version in self.versions.items()]
        return (("", ""),) + tuple(rows)


def _edit_label(edit) -> str:
    """``rome at layers [3]: Eiffel Tower -> Rome`` for an applied edit value (read by attribute)."""
    requests = ", ".join(f"{r.subject} ->{getattr(r, 'target_new', '')}" for r in getattr(edit, "requests", ()))
    return f"{getattr(edit, 'method', 'edit')} at layers {list(getattr(edit, 'layers', []))}: {requests}"


# ---- sections and the report ---------------------------------------------------------------------
@dataclass(frozen=True)
class Section:
    """One experiment in the report: words, tables, PNG images and the command that reproduces it."""

    title: str
    kind: str = "text"  # trace | probe | edit | diff | probe-shift | text | app
    text: str = ""
    tables: tuple[Table, ...] = ()
    images: tuple[bytes, ...] = ()  # PNG bytes
    command: str | None = None

    def with_command(self, command: str | None) -> "Section":
        return self if self.command or not command else dataclasses.replace(self, command=command)


@dataclass(frozen=True)
class Report:
    """A titled list of model cards and sections; immutable (``add`` returns a new report)."""

    title: str = "Open Weights Workbench report"
    cards: tuple[ModelCard, ...] = ()
    sections: tuple[Section, ...] = ()
    empty_note: str = "Nothing has been run yet."

    def add(self, *sections: Section) -> "Report":
        return dataclasses.replace(self, sections=self.sections + tuple(sections))

    def with_command(self, command: str | None) -> "Report":
        """Give ``command`` to every section that has none (the CLI: the command line that ran)."""
        return dataclasses.replace(self, sections=tuple(s.with_command(command) for s in self.sections))

    def render_html(self) -> str:
        """The report as one HTML document: embedded CSS, ``data:`` images, no external reference."""
        cards = "\n".join(_card_html(card) for card in self.cards)
        body = "\n".join(_section_html(i, s) for i, s in enumerate(self.sections, 1))
        return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(self.title)}</title>'
                f"<style>{_STYLE}</style></head><body><h1>{_e(self.title)}</h1>"
                f"<p class=\"meta\">written {time.strftime('%Y-%m-%d %H:%M:%S %Z')}</p>\n{cards}\n"
                f"{body or '<p>' + _e(self.empty_note) + '</p>'}</body></html>\n")

    def save(self, path: str | Path) -> Path:
        """Write the HTML to ``path`` atomically and return the path."""
        path = Path(path)
        write_text(path, self.render_html())
        return path


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.8em; } h2 { font-size: 1.3em; border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0; } td, th { border: 1px solid #bbb; padding: .25em .6em; }
th { background: #eee; } img { max-width: 100%; display: block; margin: .5em 0; }
pre { white-space: pre-wrap; background: #f6f6f6; padding: .6em; }
code { background: #f2f2f2; padding: 0 .2em; } .text table td, .text table th { font-size: .95em; }
.meta { color: #666; } .card td:first-child { font-weight: 600; } .card td { font-family: monospace; }
.command { background: #eef3f8; border-left: 4px solid #0072B2; }
"""


def _e(text) -> str:
    return html.escape(str(text))


def _table_html(rows: Table, css: str = "") -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{_e(c)}</th>" for c in rows[0]) if any(rows[0]) else ""
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
    return (f"<table{f' class={css!r}' if css else ''}>" + (f"<thead><tr>{head}</tr></thead>" if head else "")
            + f"<tbody>{body}</tbody></table>")


def _card_html(card: ModelCard) -> str:
    heading = f"Model card{f' ({card.role})' if card.role else ''}: {card.model}"
    return f"<section><h2>{_e(heading)}</h2>{_table_html(card.rows(), 'card')}</section>"


def _section_html(index: int, section: Section) -> str:
    parts = [f"<section><h2>{index}. {_e(section.title)}</h2>"]
    if section.command:
        parts.append(f'<p>Reproduce:</p><pre class="command">{_e(section.command)}</pre>')
    if section.text:
        parts.append(f'<div class="text">{markdown_html(section.text)}</div>')
    parts += [_table_html(rows) for rows in section.tables]
    parts += [f'<img alt="{_e(section.title)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
              for png in section.images]
    parts.append("</section>")
    return "\n".join(parts)


def markdown_html(text: str) -> str:
    """Markdown (CommonMark with tables; line breaks kept) as HTML; raw HTML in the text is escaped.

    >>> markdown_html("**hidden state** at `layer 3`")
    '<p><strong>hidden state</strong> at <code>layer 3</code></p>\\n'
    """
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "breaks": True}).enable("table").render(str(text))


def text_section(title: str, text: str, command: str | None = None) -> Section:
    """Free text (notes, a conclusion)."""
    return Section(title, "text", text, command=command)


def dict_tables(value: dict) -> list[Table]:
    """A nested dict as tables: its scalars in one key/value table, each list of dicts a table of
    its own (for results whose shape is open-ended, such as an explanation).

    >>> [len(t) for t in dict_tables({"layer": 3, "rows": [{"a": 1, "b": 2}]})]
    [2, 2]
    """
    scalars = [("", "")] + [(k, num(v, 4)) for k, v in value.items() if not isinstance(v, (dict, list))]
    out = [table(scalars)] if len(scalars) > 1 else []
    for key, item in value.items():
        if isinstance(item, list) and item and isinstance(item[0], dict):
            header = list(item[0])
            out.append(table([[f"{key}: {header[0]}", *header[1:]]] + [[num(row.get(h), 4) for h in header]
                                                                         for row in item]))
        elif isinstance(item, dict):
            out += dict_tables(item)
        elif isinstance(item, list):
            out.append(table([(key,)] + [(num(v, 4),) for v in item]))
    return out
