"""Reports: a model card and the experiments run, as one self-contained HTML file.

The one report builder of the workbench: the CLI's ``--report F.html`` and the app's Report tab
both fill a :class:`Report` and call :meth:`Report.render_html` / :meth:`Report.save`. Images
are inlined as base64 PNG ``data:`` URIs and the style sheet is embedded: the file opens
offline and names no external resource. Every section carries the CLI command that reproduces
it. Section builders read the documented ``to_dict()`` results (trace, sweep, edit, diff,
probe shift), so this core module imports neither ``probes`` nor ``editing``.

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


def _num(value, digits: int = 3) -> str:
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
        parts.append(f"<pre>{_e(section.text)}</pre>")
    parts += [_table_html(rows) for rows in section.tables]
    parts += [f'<img alt="{_e(section.title)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
              for png in section.images]
    parts.append("</section>")
    return "\n".join(parts)


# ---- sections from results (their to_dict() forms) -----------------------------------------------
def text_section(title: str, text: str, command: str | None = None) -> Section:
    """Free text (notes, a conclusion)."""
    return Section(title, "text", text, command=command)


def trace_section(result: dict, image: bytes | None = None, command: str | None = None) -> Section:
    """A causal trace (``TraceResult.to_dict()``) with its heatmap image."""
    rows = [("restored", "peak score", "layer", "token")]
    for kind, grid in result["scores"].items():
        flat = [(v, layer, tok) for layer, row in enumerate(grid) for tok, v in enumerate(row)]
        value, layer, tok = max(flat, key=lambda cell: cell[0])  # first peak, as TraceResult.peak
        rows.append((kind, _num(value), layer, repr(result["tokens"][tok])))
    text = (f"Prompt {result['prompt']!r}, subject {result['subject']!r}, answer {result['target']!r}: "
            f"P(answer) clean {_num(result['clean_prob'])}, "
            f"with the subject corrupted {_num(result['corrupted_prob'])} "
            f"({result['method']}, {result['samples']} noise samples, window {result['window']}).")
    return Section(f"Causal trace: {result['subject']}", "trace", text, (table(rows),),
                   (image,) if image else (), command)


def sweep_section(result: dict, images: Sequence[bytes] = (), command: str | None = None) -> Section:
    """A probe sweep (``SweepResult.to_dict()``, optionally with ``causal``) with its curve."""
    extras = [k for k in ("auc", "km_error", f"transfer_{result['metric']}") if k in result["layers"][0]]
    rows = [("layer", result["metric"], "±", "control", "selectivity", *extras)]
    for r in result["layers"]:
        rows.append((f"{r['layer']}{' (best)' if r['layer'] == result['best_layer'] else ''}", _num(r["value"]),
                     _num(r["std"]), _num(r["control"]), _num(r["selectivity"]), *(_num(r[k]) for k in extras)))
    tables = [table(rows)]
    if result.get("causal"):
        curve = result["causal"]["curve"]
        tables.append(table([("alpha", "P(target)", "random dir", "P(original)", "random dir", "flip rate")]
                            + [(c["alpha"], _num(c["p_target"]), _num(c["p_target_random"]), _num(c["p_original"]),
                                _num(c["p_original_random"]), _num(c["flip_rate"])) for c in curve]))
    text = (f"{result['method']} probe on {result['dataset']} ({result['position']}), {result['n_train']} train / "
            f"{result['n_test']} test rows, seeds {result['seeds']}; best layer {result['best_layer']}.")
    return Section(f"Probe sweep: {result['dataset']}", "probe", text, tuple(tables), tuple(images), command)


def edit_section(result: dict, command: str | None = None) -> Section:
    """An edit (``EditResult.to_dict()``): before/after table per request and the metrics."""
    before = result["per_request"]["before"] or []
    after = result["per_request"]["after"] or []
    rows = [("prompt", "top token before", "after", "P(new) before", "after", "P(true) before", "after")]
    for b, a in zip(before, after):
        rows.append((b["prompt"], repr(b["top_token"]), repr(a["top_token"]), _num(b["new_prob"]),
                     _num(a["new_prob"]), _num(b["true_prob"]), _num(a["true_prob"])))
    metrics = [("metric", "before", "after")]
    for name, value in result["metrics"].items():
        if value is not None:
            metrics.append((name, _num((result.get("metrics_before") or {}).get(name)), _num(value)))
    text = (f"{result['method'].upper()} at layer(s) {result['layers']}, {result['n_requests']} request(s), "
            f"update norm {_num(result['update_norm'])}, {result['elapsed_s']:.1f}s.")
    if result.get("saved"):
        text += f"\nEdited model saved to {result['saved']}"
    return Section(f"Edit ({result['method'].upper()})", "edit", text,
                   tuple(t for t in (table(rows), table(metrics)) if len(t) > 1), (), command)


def diff_section(result: dict, command: str | None = None) -> Section:
    """A weight diff (``DiffReport.to_dict()`` plus the CLI's ``rank_one`` / ``revert`` /
    ``explain`` entries): the changed-tensor table and the explanation."""
    rows = [("tensor", "shape", "layer", "|Δ|", "relative", "max |Δ|", "rank", "stable rank")]
    for d in result["changed"]:
        rank = "" if d["rank"] is None else f"{'≥' if d['rank_is_lower_bound'] else ''}{d['rank']}"
        rows.append((d["name"], "×".join(map(str, d["shape"])), d["layer"], _num(d["abs_change"], 4),
                     _num(d["rel_change"], 4), _num(d["max_abs"], 4), rank, _num(d["stable_rank"])))
    lines = [f"{result['base']} -> {result['edited']}: signature {result['signature']!r}, "
             f"{len(result['changed'])} of {result['n_tensors']} tensors changed.", result.get("summary", "")]
    if result.get("rank_one"):
        r1 = result["rank_one"]
        lines.append("Rank-one update recovered: " + ", ".join(f"{k} {_num(v, 4)}" for k, v in r1.items()
                                                               if isinstance(v, (int, float, str))))
    if result.get("revert"):
        lines.append(f"Reverted weights written to {result['revert']['out']}; largest difference from the base "
                     f"{_num(result['revert']['max_abs_diff_from_base'], 4)}.")
    tables = [table(rows)]
    explanation = result.get("explain")
    if explanation:
        lines.append("Explanation:")
        tables += _dict_tables(explanation)
    return Section(f"Weight diff: {result['edited']}", "diff", "\n".join(l for l in lines if l), tuple(tables), (),
                   command)


def _dict_tables(value: dict) -> list[Table]:
    """A nested explanation dict as tables: scalars in one key/value table, each list of dicts its own."""
    scalars = [("", "")] + [(k, _num(v, 4)) for k, v in value.items() if not isinstance(v, (dict, list))]
    out = [table(scalars)] if len(scalars) > 1 else []
    for key, item in value.items():
        if isinstance(item, list) and item and isinstance(item[0], dict):
            header = list(item[0])
            out.append(table([[f"{key}: {header[0]}", *header[1:]]] + [[_num(row.get(h), 4) for h in header]
                                                                         for row in item]))
        elif isinstance(item, dict):
            out += _dict_tables(item)
        elif isinstance(item, list):
            out.append(table([(key,)] + [(_num(v, 4),) for v in item]))
    return out


def shift_section(result: dict, image: bytes | None = None, command: str | None = None) -> Section:
    """A probe shift (``probes.shift.ShiftResult.to_dict()``): per-layer readings before/after."""
    old, new = result["old_class"], result["new_class"]
    rows = [("layer", "probe acc.", "read before", f"P({old}) before", f"P({new}) before",
             "read after", f"P({old}) after", f"P({new}) after")]
    for r in result["layers"]:
        b, a = r["before"], r["after"]
        rows.append((r["layer"], _num(r.get("probe_accuracy")), b["predicted"], _num(b["p_old"]), _num(b["p_new"]),
                     a["predicted"], _num(a["p_old"]), _num(a["p_new"])))
    text = (f"Probe {result['method']} on {result['dataset']} (trained on the unedited model without "
            f"{result['subject']!r}), read at {result['position']} of {result['text']!r} before and after "
            f"the edit {result['subject']!r} -> {result['target']!r} ({result['edit_method']} at layer(s) "
            f"{result['edit_layers']}). {result['summary']}")
    return Section(f"Probe shift: {result['subject']} -> {result['target']}", "probe-shift", text, (table(rows),),
                   (image,) if image else (), command)
