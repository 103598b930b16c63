"""``results/latest.json`` (every figure, with its spread and context) and ``results/latest.md``
(the tables people read: compared frameworks, PyFlue-only figures, targets)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import imports
from .frameworks import BARE, FLOOR, Framework
from .metrics import METRICS

__all__ = ["markdown", "read", "update_docs", "write"]

# multiplication sign, en dash, division sign (escaped: they look like x, - and a plus)
TIMES, DASH, DIVIDE = "\u00d7", "\u2013", "\u00f7"

Figures = dict[str, dict[str, dict[str, Any]]]


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}".replace(",", " ")
    return f"{value:.3g}"


def _cell(cell: dict[str, Any] | None, pyflue: bool) -> str:
    if cell is None:
        return ""
    status = cell.get("status")
    if status == "not_available":
        return "n/a"
    if status != "ok":
        return "error"
    text = f"{_num(cell['median'])}"
    if cell.get("p10") is not None and cell["p10"] != cell["p90"]:
        text += f" ({_num(cell['p10'])}{DASH}{_num(cell['p90'])})"
    if "conversations" in cell:
        text += f" (n={cell['conversations']})"
    if not pyflue and "ratio_to_pyflue" in cell:
        ratio = cell["ratio_to_pyflue"]
        text += f" **{TIMES}{ratio:.2g}**" if ratio < 10 else f" **{TIMES}{ratio:,.0f}**".replace(",", " ")
    return text


def _compared_table(figures: Figures, frameworks: list[Framework]) -> list[str]:
    columns = [*frameworks, FLOOR]
    lines = [
        "| metric | unit | better | " + " | ".join(f.label for f in columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    rows = [(m.key, m.title, m.unit, m.better) for m in METRICS if not m.pyflue_only]
    rows.insert(1, ("import_vs_floor", "import ÷ floor (same run)", TIMES, "lower"))
    for key, title, unit, better in rows:
        row = figures.get(key)
        if not row:
            continue
        cells = []
        for f in columns:
            cell = row.get(f.name)
            if key == "import_vs_floor" and cell is not None:
                cell = {"status": "ok", "median": cell["median"]}
            cells.append(_cell(cell, f.name == "pyflue"))
        lines.append(f"| {title} | {unit} | {better} | " + " | ".join(cells) + " |")
    return lines


def _imports_table(figures: Figures, frameworks: list[Framework]) -> list[str]:
    """What each entry's startup imports, its time, and that time over the floor's."""
    imports_ms, vs_floor = figures.get("import_ms", {}), figures.get("import_vs_floor", {})
    lines = [
        f"| entry | statement timed | ms, median (p10{DASH}p90) | {DIVIDE} floor |",
        "|---|---|---|---|",
    ]
    for f in [*frameworks, BARE, FLOOR]:
        cell = imports_ms.get(f.name)
        if cell is None:
            continue
        ratio = vs_floor.get(f.name, {}).get("median")
        shown = {k: v for k, v in cell.items() if k != "ratio_to_pyflue"}
        ratio_text = f"{ratio:.2f}" if ratio is not None else ""
        lines.append(f"| {f.label} | `{f.import_statement}` | {_cell(shown, True)} | {ratio_text} |")
    return lines


def _pyflue_table(figures: Figures) -> list[str]:
    lines = [f"| metric | unit | better | median | p10{DASH}p90 | n |", "|---|---|---|---|---|---|"]
    for metric in METRICS:
        if not metric.pyflue_only:
            continue
        cell = figures.get(metric.key, {}).get("pyflue")
        if cell is None:
            continue
        if cell.get("status") != "ok":
            reason = cell.get("reason") or cell.get("error") or ""
            lines.append(f"| {metric.title} | {metric.unit} | {metric.better} | n/a | {reason} | |")
            continue
        spread = f"{_num(cell['p10'])}{DASH}{_num(cell['p90'])}"
        median = _num(cell["median"])
        lines.append(
            f"| {metric.title} | {metric.unit} | {metric.better} | {median} | {spread} | {cell['n']} |"
        )
    return lines


def _targets_table(targets: list[dict[str, Any]], figures: Figures) -> list[str]:
    lines = ["| target | PyFlue | compared with | met |", "|---|---|---|---|"]
    for t in targets:
        if t["metric"] not in figures:
            continue  # its scenario was not run
        value = f"{t['value']:.3g}" if "value" in t else t.get("note", "")
        if t.get("against") not in (None, "absolute"):
            value += TIMES
        met = {True: "yes", False: "**no**", None: "—"}[t["met"]]
        lines.append(f"| {t['target']} | {value} | {t.get('against', '')} | {met} |")
    return lines


def _notes(figures: Figures, frameworks: list[Framework]) -> list[str]:
    notes = []
    for row_key, row in figures.items():
        for name, cell in row.items():
            if cell.get("status") in ("not_available", "error"):
                why = cell.get("reason") or cell.get("error")
                notes.append(f"- `{name}` / `{row_key}`: {cell['status'].replace('_', ' ')} — {why}")
    return sorted(set(notes))


def markdown(
    meta: dict[str, Any],
    figures: Figures,
    targets: list[dict[str, Any]],
    frameworks: list[Framework],
    breakdown: dict[str, Any] | None = None,
) -> str:
    versions = ", ".join(f"{name} {version}" for name, version in meta["versions"].items())
    load = meta["load_average"]
    out = [
        f"# Benchmarks {DASH} {meta['date']} ({meta['mode']} mode)",
        "",
        f"Python {meta['python']}, {meta['cpus']} CPUs, {meta['platform']}; commit `{meta['commit']}`; "
        f"{meta.get('rounds', 1)} round(s) per scenario, interleaved across frameworks (seed "
        f"{meta.get('seed', 0)}); 1-minute load average {load[0]} before, {load[1]} after; "
        f"{meta['elapsed_s']:.0f} s.",
        f"Versions: {versions}.",
        "",
        "Absolute figures depend on the machine and on its load while the run lasted; the ratios, "
        "measured side by side in the same run, are what to compare.",
        "",
        f"Cells: median (p10{DASH}p90) **{TIMES}ratio**, the ratio being *that framework's median {DIVIDE} "
        "PyFlue's*; `better` says which way wins. n/a: the framework cannot do it (see notes).",
        "",
        *_compared_table(figures, frameworks),
    ]
    import_rows = _imports_table(figures, frameworks)
    if len(import_rows) > 2:
        out += ["", "## Imports", "", *import_rows]
    if breakdown:
        out += ["", "## Where PyFlue's import time goes", "", *imports.render(breakdown)]
    pyflue_only = _pyflue_table(figures)
    if len(pyflue_only) > 2:
        out += ["", "## PyFlue only", "", *pyflue_only]
    out += ["", "## Targets", "", *_targets_table(targets, figures)]
    notes = _notes(figures, frameworks)
    if notes:
        out += ["", "## Notes", "", *notes]
    return "\n".join(out) + "\n"


def read(directory: Path) -> tuple[dict[str, Any], Figures, list[dict[str, Any]], dict[str, Any] | None]:
    """``meta``, ``figures``, ``targets`` and the import breakdown of a ``latest.json``."""
    document = json.loads((directory / "latest.json").read_text())
    return document["meta"], document["figures"], document["targets"], document.get("import_breakdown")


def write(
    directory: Path,
    meta: dict[str, Any],
    figures: Figures,
    targets: list[dict[str, Any]],
    frameworks: list[Framework],
    breakdown: dict[str, Any] | None = None,
) -> str:
    """Writes both files; returns the markdown."""
    directory.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "figures": figures, "targets": targets, "import_breakdown": breakdown}
    (directory / "latest.json").write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    text = markdown(meta, figures, targets, frameworks, breakdown)
    (directory / "latest.md").write_text(text)
    return text


_START, _END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"


def update_docs(page: Path, text: str) -> bool:
    """Replace the results between the page's ``bench:results`` markers with ``text`` (its title
    line dropped: the page has its own headings). False when the page has no markers."""
    content = page.read_text()
    start, end = content.find(_START), content.find(_END)
    if start < 0 or end < start:
        return False
    body = text.split("\n", 1)[1].strip().replace("\n## ", "\n### ")
    page.write_text(f"{content[: start + len(_START)]}\n{body}\n{content[end:]}")
    return True
