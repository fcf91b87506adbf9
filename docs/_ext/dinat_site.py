"""Sphinx extension of the dinat-ref site: pages made from the repository, never copied by hand.

* Tutorials: every ``tutorials/[0-9]*.py`` (jupytext percent format) is synced into
  ``docs/tutorials/`` (generated, ignored by git) with a download line added under its title;
  myst-nb then executes and renders it. The untouched notebook (``.ipynb``) and script are
  written to ``docs/_downloads_src/`` for the download links.
* The explorer: :func:`dinat_ref.commands.explore.build_page` writes ``docs/_extra/dinat_explorer.html``,
  copied into the site root by ``html_extra_path``.
* README text: a page may hold a marker line that is replaced, when Sphinx reads the page, by
  part of ``README.md`` (or ``tutorials/README.md``) with its links rewritten for the site::

      <!-- readme-intro -->                      the text before the first "## " section
      <!-- readme-section: The rule -->         the body of the section whose title starts so
      <!-- readme-rest: The rule, Figures -->   every section but those named, in README order
      <!-- tutorials-readme -->                 tutorials/README.md without its title
      <!-- figure-gallery -->                   every figures/*.png, captioned from README
      <!-- optional-pages: zoo -->              (inside a toctree) those of the pages that exist

A link to a file in the repository becomes a link to its page on the site when it has one
(tutorials, the figure gallery) and plain code text otherwise; images point at ``figures/``.
"""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent
ROOT = DOCS.parent
TUTORIALS = ROOT / "tutorials"
GENERATED_TUTORIALS = DOCS / "tutorials"
DOWNLOADS = DOCS / "_downloads_src"
EXTRA = DOCS / "_extra"

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")
MARKER = re.compile(r"^<!--[ \t]*([a-z-]+)(?::[ \t]*(.*?))?[ \t]*-->[ \t]*$", re.M)  # one whole line


# ---------------------------------------------------------------------------------------
# Markdown helpers
# ---------------------------------------------------------------------------------------

def _outside_fences(lines: list[str]):
    """Yield (index, line, in_fence) for every line, tracking fenced code blocks."""
    fence = None
    for i, line in enumerate(lines):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
                yield i, line, True
                continue
            if m.group(1) == fence:
                fence = None
                yield i, line, True
                continue
        yield i, line, fence is not None


def split_sections(text: str) -> tuple[str, list[tuple[str, str]]]:
    """``README`` text -> (intro, [(title, body), ...]) split at level-2 headings."""
    lines = text.splitlines()
    starts = [(i, HEADING.match(line).group(2)) for i, line, fenced in _outside_fences(lines)
              if not fenced and line.startswith("## ")]
    if not starts:
        return text, []
    intro = "\n".join(lines[: starts[0][0]])
    sections = []
    for n, (i, title) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(lines)
        sections.append((title, "\n".join(lines[i + 1: end]).strip("\n")))
    return intro, sections


def shift_headings(text: str, top: int) -> str:
    """Shift every heading (outside code) so the shallowest one has level ``top``."""
    lines = text.splitlines()
    levels = [len(HEADING.match(line).group(1)) for _, line, f in _outside_fences(lines)
              if not f and HEADING.match(line)]
    if not levels:
        return text
    delta = top - min(levels)
    out = list(lines)
    for i, line, fenced in _outside_fences(lines):
        m = None if fenced else HEADING.match(line)
        if m:
            out[i] = "#" * min(6, len(m.group(1)) + delta) + " " + m.group(2)
    return "\n".join(out)


def tutorial_pages() -> dict[str, str]:
    """Tutorial file name -> its page (docname) on the site."""
    return {p.name: f"tutorials/{p.stem}" for p in sorted(TUTORIALS.glob("[0-9]*.py"))}


def rewrite_links(text: str, base: Path, page_dir: str = "") -> str:
    """Make the links of a repository Markdown file (in folder ``base``) work on the site.

    Args:
        text: Markdown.
        base: the folder the text's relative links start from.
        page_dir: folder of the page the text lands in, relative to ``docs/`` ("" or "tutorials").
    """
    tutorials = tutorial_pages()
    up = "../" * (page_dir.count("/") + 1 if page_dir else 0)
    to_docs = up  # from the page's folder back to docs/
    to_root = "../" + up  # from the page's folder to the repository root

    def repl(m: re.Match) -> str:
        bang, label, target = m.groups()
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            return m.group(0)  # http(s):, mailto:, an anchor: leave it
        path, _, anchor = target.partition("#")
        resolved = (base / path).resolve()
        try:
            rel = resolved.relative_to(ROOT).as_posix()
        except ValueError:
            rel = path
        if bang:
            return f"![{label}]({to_root}{rel})"  # images: the file itself
        name = Path(rel).name
        if rel.startswith("tutorials/") and name in tutorials:
            return f"[{label}]({to_docs}{tutorials[name]}.py)"
        if rel in ("tutorials", "tutorials/README.md"):
            return f"[{label}]({to_docs}tutorials.md)"
        if rel == "figures" or rel == "figures/":
            return f"[{label}]({to_docs}gallery.md)"
        if rel.startswith("figures/") and rel.endswith(".png"):
            return f"[{label}]({to_root}{rel})"
        # Any other file of the repository: no page on the site, keep the words.
        return label

    out = text.splitlines()
    for i, line, fenced in _outside_fences(out):
        if not fenced:
            out[i] = LINK.sub(repl, line)
    return "\n".join(out)


# ---------------------------------------------------------------------------------------
# Markers
# ---------------------------------------------------------------------------------------

def _find(sections: list[tuple[str, str]], prefix: str, where: str) -> tuple[str, str]:
    for title, body in sections:
        if title.lower().startswith(prefix.lower()):
            return title, body
    raise ValueError(
        f"{where}: README.md has no section whose title starts with {prefix!r}; "
        f"its sections are {[t for t, _ in sections]}."
    )


def figure_captions(readme: str) -> dict[str, str]:
    """figures/NAME.png -> the words written beside it in README (the gallery's captions)."""
    caps = {}
    for m in re.finditer(r"!\[[^\]]*\]\(figures/([^)]+\.png)\)\s*([^|\n]*)", readme):
        caps[m.group(1)] = m.group(2).strip()
    return caps


# Screenshots of the site itself (made by docs/_ext/screenshots.py) are not in the gallery.
SCREENSHOTS = {"site_tutorial.png", "explorer.png"}


def gallery(readme: str) -> str:
    caps = figure_captions(readme)
    pngs = {p.name: p for p in (ROOT / "figures").glob("*.png") if p.name not in SCREENSHOTS}
    order = [n for n in caps if n in pngs] + sorted(n for n in pngs if n not in caps)  # README's order first
    blocks = []
    for png in (pngs[n] for n in order):
        cap = rewrite_links(caps.get(png.name, ""), ROOT) or png.stem.replace("_", " ")
        blocks.append(
            f"```{{figure}} ../figures/{png.name}\n:name: fig-{png.stem}\n:width: 100%\n\n"
            f"**{png.name}**: {cap}\n```\n"
        )
    return "\n".join(blocks)


def expand(docname: str, source: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    intro, sections = split_sections(readme)
    page_dir = docname.rpartition("/")[0]
    where = f"{docname}.md"

    def sub(m: re.Match) -> str:
        kind, arg = m.group(1), (m.group(2) or "").strip()
        if kind == "readme-intro":
            return rewrite_links(shift_headings(intro, 1), ROOT, page_dir)
        if kind == "readme-section":
            title, body = _find(sections, arg, where)
            return rewrite_links(shift_headings(body, 2), ROOT, page_dir)
        if kind == "readme-rest":
            skip = [s.strip() for s in arg.split(",") if s.strip()]  # a section not there: nothing to skip
            keep = [(t, b) for t, b in sections if not any(t.lower().startswith(s.lower()) for s in skip)]
            return "\n\n".join(
                f"## {t}\n\n" + rewrite_links(shift_headings(b, 3), ROOT, page_dir) for t, b in keep
            )
        if kind == "tutorials-readme":
            text = (TUTORIALS / "README.md").read_text(encoding="utf-8")
            _, body = text.split("\n", 1) if text.startswith("# ") else ("", text)
            return rewrite_links(shift_headings(body, 2), TUTORIALS, page_dir)
        if kind == "figure-gallery":
            return gallery(readme)
        if kind == "optional-pages":  # a line inside a toctree: the pages of the list that exist
            names = [s.strip() for s in arg.split(",") if s.strip()]
            present = [n for n in names if (DOCS / f"{n}.md").exists() or (DOCS / f"{n}.rst").exists()]
            return "\n".join(present)
        return m.group(0)  # an ordinary HTML comment

    return MARKER.sub(sub, source)


def on_source_read(app, docname: str, source: list[str]) -> None:
    source[0] = expand(docname, source[0])


# ---------------------------------------------------------------------------------------
# Generated files: tutorials and the explorer
# ---------------------------------------------------------------------------------------

def _write_if_changed(path: Path, text: str) -> None:
    """Keep the old file (and its mtime, so Sphinx does not re-execute) when nothing changed."""
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def sync_tutorials() -> list[str]:
    """Copy every tutorial into docs/tutorials/ with a download line; return the page names."""
    import jupytext
    import nbformat

    names = []
    GENERATED_TUTORIALS.mkdir(exist_ok=True)
    DOWNLOADS.mkdir(exist_ok=True)
    for src in sorted(TUTORIALS.glob("[0-9]*.py")):
        text = src.read_text(encoding="utf-8")
        nb = jupytext.reads(text, fmt="py:percent")
        _write_if_changed(DOWNLOADS / src.name, text)
        _write_if_changed(DOWNLOADS / f"{src.stem}.ipynb", jupytext.writes(nb, fmt="ipynb"))
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = rewrite_links(cell.source, TUTORIALS, "tutorials")
        note = (
            f"{{download}}`Download the notebook <../_downloads_src/{src.stem}.ipynb>` "
            f"&middot; {{download}}`the script <../_downloads_src/{src.name}>` "
            f"(jupytext percent format: `python {src.name}` runs it, Jupyter opens it as a notebook)."
        )
        first = nb.cells[0] if nb.cells else None
        if first is not None and first.cell_type == "markdown" and first.source.lstrip().startswith("# "):
            title, _, rest = first.source.lstrip().partition("\n")  # right under the title
            first.source = f"{title}\n\n{note}\n\n{rest.lstrip()}"
        else:
            nb.cells.insert(0, nbformat.v4.new_markdown_cell(note))
        _write_if_changed(GENERATED_TUTORIALS / src.name, jupytext.writes(nb, fmt="py:percent"))
        names.append(src.stem)
    for old in GENERATED_TUTORIALS.glob("*.py"):  # a tutorial that was removed or renamed
        if old.stem not in names:
            old.unlink()
    return names


def write_explorer() -> None:
    from dinat_ref.commands.explore import build_page

    _write_if_changed(EXTRA / "dinat_explorer.html", build_page())


def generate() -> None:
    """Write the generated sources; conf.py calls it, before Sphinx checks html_extra_path."""
    sync_tutorials()
    write_explorer()


# ---------------------------------------------------------------------------------------
# Docstrings: shape tuples such as (B, *spatial, heads) are notation, not emphasis, and
# a module docstring may have titled sections
# ---------------------------------------------------------------------------------------

_STAR = re.compile(r"(?:(?<=\()|(?<=, ))\*(?=[A-Za-z_][\w.]*(?![\w*]))")


def escape_shape_stars(line: str) -> str:
    """``(B, *spatial, heads)`` -> ``(B, \\*spatial, heads)`` outside inline code.

    Only a ``*`` that starts a name right after ``(`` or ``, `` and is not closed by another
    ``*`` (real emphasis) is escaped, so the shape reads as written.
    """
    parts = line.split("``")
    for n in range(0, len(parts), 2):  # even parts are outside ``inline code``
        parts[n] = _STAR.sub(r"\\*", parts[n])
    return "``".join(parts)


_UNDERLINE = re.compile(r"^([-=~^\"'`#*+])\1{2,}\s*$")


def titles_to_rubrics(lines: list[str]) -> list[str]:
    """A section title in a docstring (a line underlined with ``---``) becomes a rubric.

    Docutils forbids sections inside autodoc's content; a rubric is the same heading without
    the nesting, so module docstrings written as small documents render as written.
    """
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        is_title = (line.strip() and not line[0].isspace() and _UNDERLINE.match(nxt)
                    and (i == 0 or not lines[i - 1].strip()))
        if is_title:
            out += [f".. rubric:: {line.strip()}", ""]
            i += 2
            continue
        out.append(line)
        i += 1
    return out


def on_docstring(app, what, name, obj, options, lines: list[str]) -> None:
    lines[:] = [escape_shape_stars(line) for line in titles_to_rubrics(lines)]


# ---------------------------------------------------------------------------------------
# Executed outputs: a progress bar redraws its line with "\r"; show what a terminal shows
# ---------------------------------------------------------------------------------------

def collapse_carriage_returns(text: str) -> str:
    """Keep, on every line, only what was written after its last carriage return."""
    lines = text.replace("\r\n", "\n").split("\n")
    return "\n".join(line.rsplit("\r", 1)[-1] for line in lines)


def on_doctree_read(app, doctree) -> None:
    """Merge each run of stream outputs (stdout or stderr) of a cell into one block, as a
    terminal would show it (myst-nb's own merging turns every redraw into a new line)."""
    from docutils import nodes

    def stream(node) -> str | None:
        classes = node.get("classes", []) if isinstance(node, nodes.literal_block) else []
        return next((c for c in ("stdout", "stderr") if "output" in classes and c in classes), None)

    for output in list(doctree.findall(lambda n: isinstance(n, nodes.container)
                                       and "cell_output" in n.get("classes", []))):
        children = list(output.children)
        merged: list = []
        for child in children:
            kind = stream(child)
            if kind and merged and stream(merged[-1]) == kind:
                merged[-1].children = [nodes.Text(merged[-1].astext() + child.astext())]
            else:
                merged.append(child)
        for block in merged:
            if stream(block):
                block.children = [nodes.Text(collapse_carriage_returns(block.astext()).rstrip("\n") + "\n")]
                block.rawsource = block.astext()
        output.children = []
        output.extend(merged)


def setup(app):
    app.connect("source-read", on_source_read)
    app.connect("autodoc-process-docstring", on_docstring)
    app.connect("doctree-read", on_doctree_read)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
