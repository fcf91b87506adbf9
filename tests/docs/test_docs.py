"""The learning site: its page-making helpers, and a quick build with warnings as errors.

The full build (``python -m sphinx -W -b html docs docs/_build/html``, README's docs command)
executes every tutorial and runs in CI; here the site is built without executing them, so a
broken docstring, a README section that moved or a bad link fails fast.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _site_module():
    spec = importlib.util.spec_from_file_location("dinat_site", DOCS / "_ext" / "dinat_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


site = _site_module()


def test_readme_gives_the_docs_command():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- docs-command -->\s*```bash\n(.*?)\n```\s*<!-- /docs-command -->", readme, re.S)
    assert block, "README.md needs the docs command between docs-command markers (.ci/run reads it)"
    assert block.group(1).strip() == "python -m sphinx -W -b html docs docs/_build/html"
    assert "docs/_build/" in (ROOT / ".gitignore").read_text()


def test_split_and_shift_keep_code_blocks():
    text = "# T\n\nintro\n\n## A\n\n```bash\n## not a heading\n```\n\n### A.1\n\ntext\n\n## B\n\nb"
    intro, sections = site.split_sections(text)
    assert intro.strip() == "# T\n\nintro"
    assert [t for t, _ in sections] == ["A", "B"]
    body = sections[0][1]
    assert "## not a heading" in body
    shifted = site.shift_headings(body, 2)
    assert "## A.1" in shifted and "## not a heading" in shifted  # the code line is untouched


def test_links_are_rewritten_for_the_site():
    tutorial = sorted((ROOT / "tutorials").glob("[0-9]*.py"))[0]
    text = (f"[the rule](dinat_ref/neighborhood.py) ![](figures/rf_growth.png) "
            f"[t](tutorials/{tutorial.name}) [all](tutorials/README.md) [figs](figures) "
            "[web](https://example.org) [a](#anchor)")
    out = site.rewrite_links(text, ROOT)
    assert "the rule" in out and "neighborhood.py)" not in out  # no page on the site: the words stay
    assert "![](../figures/rf_growth.png)" in out
    assert f"[t](tutorials/{tutorial.stem}.py)" in out
    assert "[all](tutorials.md)" in out and "[figs](gallery.md)" in out
    assert "[web](https://example.org)" in out and "[a](#anchor)" in out
    # from inside docs/tutorials/, one more level up
    inside = site.rewrite_links("![](../figures/x.png)", ROOT / "tutorials", "tutorials")
    assert "![](../../figures/x.png)" in inside


def test_every_page_marker_resolves_against_the_current_readme():
    for page in sorted(DOCS.glob("*.md")):
        out = site.expand(page.stem, page.read_text())
        leftover = [m.group(0) for m in site.MARKER.finditer(out) if m.group(1) in {
            "readme-intro", "readme-section", "readme-rest", "tutorials-readme", "figure-gallery"}]
        assert not leftover, f"{page.name}: {leftover}"
    gallery = site.expand("gallery", "<!-- figure-gallery -->")
    for png in (ROOT / "figures").glob("*.png"):
        assert (f"../figures/{png.name}" in gallery) == (png.name not in site.SCREENSHOTS), png.name


def test_optional_pages_join_the_toctree_when_they_exist(tmp_path, monkeypatch):
    monkeypatch.setattr(site, "DOCS", tmp_path)
    assert site.expand("index", "api\n<!-- optional-pages: zoo, more -->\n") == "api\n\n"
    (tmp_path / "zoo.md").write_text("# Zoo\n")
    assert site.expand("index", "api\n<!-- optional-pages: zoo, more -->\n") == "api\nzoo\n"


def test_missing_readme_section_is_named():
    with pytest.raises(ValueError, match="no section whose title starts with 'No such section'"):
        site.expand("index", "<!-- readme-section: No such section -->")


def test_docstring_shape_stars_and_titles():
    assert site.escape_shape_stars("q: (B, *spatial, heads, prod(kernel_size)).") == \
        "q: (B, \\*spatial, heads, prod(kernel_size))."
    assert site.escape_shape_stars("a *real* emphasis, (x, *y*)") == "a *real* emphasis, (x, *y*)"
    assert site.escape_shape_stars("``(B, *spatial)``") == "``(B, *spatial)``"
    lines = ["Intro.", "", "The rule", "-----", "text", "", "    code", "    ----"]
    assert site.titles_to_rubrics(lines) == ["Intro.", "", ".. rubric:: The rule", "", "text", "",
                                             "    code", "    ----"]


@pytest.mark.slow
def test_site_builds_without_warnings(tmp_path):
    for module in ("sphinx", "myst_nb", "furo", "jupytext"):
        pytest.importorskip(module, reason=f"the docs extra is not installed ({module} missing)")
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-D", "nb_execution_mode=off", "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    html = tmp_path / "html"
    tutorials = sorted((ROOT / "tutorials").glob("[0-9]*.py"))
    for t in tutorials:
        page = (html / "tutorials" / f"{t.stem}.html").read_text()
        assert f"{t.stem}.ipynb" in page, f"{t.stem}: no notebook download link"
    assert (html / "dinat_explorer.html").read_text() == site_explorer()
    assert "dinat_explorer.html" in (html / "explorer.html").read_text()
    api = (html / "api.html").read_text()
    assert "dinat_ref.neighborhood" in api and "dinat_ref.torch" in api


def site_explorer() -> str:
    from dinat_ref.commands.explore import build_page

    return build_page()


def test_progress_bars_read_as_in_a_terminal():
    text = "\rtrain:  0%\rtrain: 50%\rtrain: 100%\ndone\r\nnext line\n"
    assert site.collapse_carriage_returns(text) == "train: 100%\ndone\nnext line\n"
