"""The session report: everything run in one browser session as one self-contained HTML file.

Images are inlined as base64 PNG and the style sheet is embedded: the file opens offline and
makes no network request.
"""
from __future__ import annotations

import base64
import html
import time
from pathlib import Path
from typing import Sequence

from workbench.app.state import ReportEntry, Workspace
from workbench.io import write_text

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.8em; } h2 { font-size: 1.3em; border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0; } td, th { border: 1px solid #bbb; padding: .25em .6em; }
th { background: #eee; } img { max-width: 100%; display: block; margin: .5em 0; }
pre { white-space: pre-wrap; background: #f6f6f6; padding: .6em; }
"""


def _table(rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _entry(index: int, entry: ReportEntry) -> str:
    parts = [f"<section><h2>{index}. {html.escape(entry.title)}</h2>"]
    if entry.text:
        parts.append(f"<pre>{html.escape(entry.text)}</pre>")
    parts.append(_table(entry.table))
    for png in entry.images:
        parts.append(f'<img alt="{html.escape(entry.title)}" src="data:image/png;base64,'
                     f'{base64.b64encode(png).decode("ascii")}">')
    parts.append("</section>")
    return "\n".join(parts)


def render(workspace: Workspace, title: str = "Open Weights Workbench: session report") -> str:
    """The HTML text of the report of ``workspace`` (no external resources)."""
    edits = "".join(f"<li>#{e.id} {html.escape(e.label)}</li>" for e in workspace.edits) or "<li>none</li>"
    sections = "\n".join(_entry(i, e) for i, e in enumerate(workspace.log, 1))
    if not sections:
        sections = "<p>Nothing has been run in this session yet.</p>"
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>Model: <code>{html.escape(workspace.model)}</code> &middot; written "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}</p><p>Edits in effect at export:</p><ul>{edits}</ul>"
            f"{sections}</body></html>")


def save(workspace: Workspace, folder: Path) -> Path:
    """Write the report under ``folder`` (atomically) and return its path."""
    path = Path(folder) / f"report-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6:06d}.html"
    write_text(path, render(workspace))
    return path
