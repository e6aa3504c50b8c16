"""``index.html``: one static, self-contained page (no server, no CDN): the tables with sortable columns, filters
for few-shot size / noise level / task family, the plots embedded as base64 SVG images, and the provenance.

Rows carry ``data-size``/``data-noise``/``data-family`` and task columns ``data-family``; the inline script hides
what a filter excludes (and a table left without visible rows), and sorts a table when a header is clicked (numeric
when both keys are numbers; empty keys last). Plots are ``<img>`` data URIs rather than inline SVG so the fixed
element ids of several SVGs cannot collide in one document.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from .render import MARKS, Section
from .tables import Cell, Table

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}
th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
th{cursor:pointer;background:#f4f4f4;user-select:none}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
.up{color:#1a7f37}.down{color:#cf222e}.note{font-size:12px;color:#555;margin-top:-1em}
.filters{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ccc}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
"""

SCRIPT = """
function sortKey(row, i) { const c = row.cells[i]; return c ? c.dataset.sort : ""; }
function compare(a, b) {
  if (a === "" || b === "") return (a === "") - (b === "");
  const x = Number(a), y = Number(b);
  return (isNaN(x) || isNaN(y)) ? a.localeCompare(b) : x - y;
}
function sortTable(th) {
  const table = th.closest("table"), i = Array.from(th.parentNode.children).indexOf(th);
  const dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
  table.querySelectorAll("th").forEach(h => h.removeAttribute("aria-sort"));
  th.setAttribute("aria-sort", dir);
  const body = table.tBodies[0], rows = Array.from(body.rows);
  rows.sort((r, s) => { const c = compare(sortKey(r, i), sortKey(s, i)); return dir === "ascending" ? c : -c; });
  rows.forEach(r => body.appendChild(r));
}
function applyFilters() {
  const want = {};
  document.querySelectorAll(".filters select").forEach(s => { want[s.name] = s.value; });
  const out = (el, key) => want[key] && el.dataset[key] && el.dataset[key] !== want[key];
  document.querySelectorAll("tbody tr").forEach(tr => {
    tr.hidden = out(tr, "size") || out(tr, "noise") || out(tr, "family");
  });
  document.querySelectorAll("th[data-family], td[data-family]").forEach(c => { c.hidden = out(c, "family"); });
  document.querySelectorAll(".table").forEach(div => {
    const rows = Array.from(div.querySelectorAll("tbody tr"));
    div.hidden = rows.length > 0 && rows.every(r => r.hidden);
  });
}
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("th").forEach(th => th.addEventListener("click", () => sortTable(th)));
  document.querySelectorAll(".filters select").forEach(s => s.addEventListener("change", applyFilters));
});
"""


def _cell(cell: Cell, family: str, tag: str = "td") -> str:
    text = escape(cell.text)
    if cell.mark:
        text += f'<span class="{"up" if cell.mark > 0 else "down"}">{MARKS[cell.mark]}</span>'
    if cell.bold:
        text = f"<strong>{text}</strong>"
    sort = "" if cell.sort is None else (repr(float(cell.sort)) if isinstance(cell.sort, (int, float)) else cell.sort)
    fam = f' data-family="{escape(family)}"' if family else ""
    return f'<{tag} data-sort="{escape(str(sort))}"{fam}>{text}</{tag}>'


def table_html(table: Table) -> str:
    families = table.families or [""] * len(table.columns)
    head = "".join(f'<th{f" data-family={chr(34)}{escape(f)}{chr(34)}" if f else ""}>{escape(c)}</th>'
                   for c, f in zip(table.columns, families))
    rows = []
    for row, filters in zip(table.rows, table.row_filters):
        attrs = "".join(f' data-{k}="{escape(v)}"' for k, v in sorted(filters.items()) if v)
        rows.append(f"<tr{attrs}>" + "".join(_cell(c, f) for c, f in zip(row, families)) + "</tr>")
    note = f'<p class="note">{escape(table.note)}</p>' if table.note else ""
    return (f'<div class="table" id="{escape(table.key)}"><h3>{escape(table.title)}</h3><table><thead><tr>{head}'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table>{note}</div>')


def _select(name: str, label: str, values: list[str]) -> str:
    options = "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)
    return f'<label>{label} <select name="{name}"><option value="">all</option>{options}</select></label> '


def _image(out_dir: Path, png: str) -> str:
    svg = (out_dir / png).with_suffix(".svg")
    data = base64.b64encode(svg.read_bytes()).decode()
    return f'<figure><img alt="{escape(png)}" src="data:image/svg+xml;base64,{data}"></figure>'


def page(title: str, provenance: list[str], sections: list[Section], filters: dict[str, list[str]],
         out_dir: Path) -> str:
    parts = [f"<h1>{escape(title)}</h1>", "<ul>" + "".join(f"<li>{escape(p)}</li>" for p in provenance) + "</ul>",
             '<div class="filters">' + _select("size", "few-shot size", filters["size"])
             + _select("noise", "noise level", filters["noise"]) + _select("family", "task family", filters["family"])
             + "</div>"]
    for section in sections:
        parts.append(f"<h2>{escape(section.heading)}</h2>")
        if section.text:
            parts.append(f"<p>{escape(section.text)}</p>")
        parts += [table_html(t) for t in section.tables]
        parts += [_image(out_dir, png) for png in section.images]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>' + escape(title) + "</title>"
            f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
