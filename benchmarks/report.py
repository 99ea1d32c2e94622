"""Render benchmark results: the ratios table for the terminal and a markdown report file."""

from __future__ import annotations

from benchmarks.common import Results


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.4g}"


def _markdown_tables(res: Results) -> list[str]:
    out: list[str] = []
    for title, (header, rows) in res.tables.items():
        out += ["", f"## {title[:1].upper()}{title[1:]}", "", "| " + " | ".join(header) + " |"]
        out.append("|" + "---|" * len(header))
        out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def render_table(res: Results) -> str:
    lines = [line for line in _markdown_tables(res) if line] + [""] if res.tables else []
    lines.append("RATIOS (measured side by side in this run)")
    width = max([len(r.name) for r in res.ratios] + [20])
    lines.append(f"{'figure':<{width}}  {'measured':>10}  {'target':>8}  verdict  note")
    for r in res.ratios:
        target = f"{r.better}{r.target:g}"
        lines.append(f"{r.name:<{width}}  {_fmt(r.value):>10}  {target:>8}  {r.verdict:<7}  {r.note}")
    if res.unavailable:
        lines.append("")
        lines.append("NOT AVAILABLE")
        lines += [f"  {section}: {reason}" for section, reason in res.unavailable]
    return "\n".join(lines)


def render_markdown(res: Results) -> str:
    out = ["# dbembed benchmark results", ""]
    out += [f"- **{k}**: {v}" for k, v in res.facts.items() if not isinstance(v, dict) and "\n" not in str(v)]
    out += _markdown_tables(res)
    for k, v in res.facts.items():
        if "\n" in str(v):  # a section's verbatim output
            out += ["", f"## {k}", "", "```", str(v), "```"]
    out += ["", "## Ratios", "", "| figure | measured | target | verdict | note |", "|---|---:|---:|---|---|"]
    for r in res.ratios:
        out.append(f"| {r.name} | {_fmt(r.value)} | {r.better}{r.target:g} | {r.verdict} | {r.note} |")
    out += ["", "## Measurements", "", "| section | figure | value | unit | note |", "|---|---|---:|---|---|"]
    for m in res.measurements:
        out.append(f"| {m.section} | {m.name} | {_fmt(m.value)} | {m.unit} | {m.note} |")
    if res.unavailable:
        out += ["", "## Not available in this run", ""]
        out += [f"- **{section}**: {reason}" for section, reason in res.unavailable]
    return "\n".join(out) + "\n"
