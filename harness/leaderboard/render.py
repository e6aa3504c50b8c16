"""Tables → Markdown and LaTeX (booktabs, via pandas), and the two documents.

pandas' ``to_markdown`` needs ``tabulate``, which is not a regbench dependency, so Markdown tables are written here
(a pipe table, cells escaped). LaTeX goes through ``DataFrame.to_latex`` (booktabs rules) with cells escaped first,
so bold and marks can be added as LaTeX commands. Neither document contains a date: regeneration is byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .tables import Cell, Table

MARKS = {1: "▲", -1: "▼"}
LATEX_MARKS = {1: r"$^{\blacktriangle}$", -1: r"$^{\blacktriangledown}$"}
_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "±": r"$\pm$", "—": "--",
                  "Δ": r"$\Delta$", "≥": r"$\geq$", "×": r"$\times$", "†": r"$^\dagger$", "‡": r"$^\ddagger$",
                  "α": r"$\alpha$", "▲": r"$\blacktriangle$", "▼": r"$\blacktriangledown$",
                  "ε": r"$\varepsilon$", "χ": r"$\chi$", "²": r"$^2$", "−": r"$-$", "∞": r"$\infty$", "–": "--",
                  "≤": r"$\leq$", "·": r"$\cdot$"}


@dataclass
class Section:
    heading: str
    text: str = ""
    tables: list[Table] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # paths relative to the output directory (PNG; SVG beside)


def _md_cell(cell: Cell) -> str:
    text = cell.text.replace("|", r"\|") + MARKS.get(cell.mark, "")
    return f"**{text}**" if cell.bold else text


def markdown(table: Table) -> str:
    lines = [f"**{table.title}**", "", "| " + " | ".join(c.replace("|", r"\|") for c in table.columns) + " |",
             "|" + "|".join("---" for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    if table.note:
        lines += ["", f"<sub>{table.note}</sub>"]
    return "\n".join(lines)


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def _tex_cell(cell: Cell) -> str:
    text = latex_escape(cell.text) + LATEX_MARKS.get(cell.mark, "")
    return rf"\textbf{{{text}}}" if cell.bold else text


def latex(table: Table) -> str:
    """A ``table`` float with a booktabs tabular (needs \\usepackage{booktabs,amssymb})."""
    frame = pd.DataFrame([[_tex_cell(c) for c in row] for row in table.rows],
                         columns=[latex_escape(c) for c in table.columns])
    body = frame.to_latex(index=False, escape=False, column_format="l" * len(table.columns))
    caption = latex_escape(table.title + (f". {table.note}" if table.note else ""))
    return "\n".join([r"\begin{table}[ht]", r"\centering", r"\small", body.rstrip(), rf"\caption{{{caption}}}",
                      rf"\label{{tab:{table.key}}}", r"\end{table}"])


def markdown_document(title: str, provenance: list[str], sections: list[Section]) -> str:
    parts = [f"# {title}", "", *[f"- {line}" for line in provenance], ""]
    for section in sections:
        parts += [f"## {section.heading}", ""]
        if section.text:
            parts += [section.text, ""]
        for table in section.tables:
            parts += [markdown(table), ""]
        parts += [f"![{path}]({path})" for path in section.images]
        if section.images:
            parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def latex_document(title: str, provenance: list[str], sections: list[Section]) -> str:
    """A standalone article (so it compiles as is); the tables can also be copied into a paper."""
    parts = [r"\documentclass{article}", r"\usepackage[margin=1.5cm,landscape]{geometry}",
             r"\usepackage{booktabs,amssymb}", r"\begin{document}", rf"\section*{{{latex_escape(title)}}}",
             r"\begin{itemize}", *[rf"\item {latex_escape(line)}" for line in provenance], r"\end{itemize}"]
    for section in sections:
        if not section.tables:
            continue
        parts.append(rf"\subsection*{{{latex_escape(section.heading)}}}")
        if section.text:
            parts.append(latex_escape(section.text))
        parts += [latex(table) for table in section.tables]
        parts.append(r"\clearpage" if len(section.tables) > 2 else "")
    parts.append(r"\end{document}")
    return "\n".join(p for p in parts if p) + "\n"
