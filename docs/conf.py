"""Sphinx configuration of the dinat-ref site.

Build it (warnings are errors; every tutorial is executed)::

    python -m sphinx -W -b html docs docs/_build/html

Quicker while writing: ``-D nb_execution_mode=off`` (no outputs), or rely on the execution
cache in ``docs/_build/.jupyter_cache`` (a tutorial re-runs only when its code changed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # document the checkout, not some other installed copy
sys.path.insert(0, str(DOCS / "_ext"))
# The tutorials' kernels inherit the environment: draw figures inline whatever MPLBACKEND
# the shell set (CI exports Agg, which would draw nothing), and find this checkout first.
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
# tqdm.auto warns, on stderr of every page with a progress bar, that ipywidgets is missing;
# the bars themselves are shown as a terminal shows them (dinat_site collapses their "\r").
os.environ["PYTHONWARNINGS"] = ",".join(
    filter(None, [os.environ.get("PYTHONWARNINGS"), "ignore:IProgress not found"])
)

import dinat_site  # noqa: E402

import dinat_ref  # noqa: E402

dinat_site.generate()  # tutorials/ -> docs/tutorials/, the explorer -> docs/_extra/

project = "dinat-ref"
author = "dinat-ref contributors"
copyright = "dinat-ref contributors, MIT License"
release = version = dinat_ref.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax served from the site itself: math renders offline too
    "sphinx.ext.viewcode",
    "dinat_site",  # last: it hooks autodoc's events
]

exclude_patterns = [
    "_build", "_ext", "_extra", "_downloads_src", "_templates", "conf.py", "**/.ipynb_checkpoints",
]
templates_path = ["_templates"]
html_extra_path = ["_extra"]  # dinat_explorer.html, self-contained, at the site root

# ---- Markdown and notebooks (myst-nb reads the jupytext percent tutorials) ----
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "cache"
nb_execution_in_temp = True  # tutorials may write files into their working directory
nb_execution_timeout = 1200  # seconds per cell: training a tiny DiNAT takes a minute or two
nb_execution_raise_on_error = True  # a tutorial that fails fails the build
nb_execution_show_tb = True
nb_merge_streams = False  # dinat_site merges them, keeping what "\r" overwrote out of the page

# ---- API reference ----
autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_mock_imports = ["natten"]
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# ---- HTML ----
html_theme = "furo"
html_title = f"dinat-ref {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_with_keys": True,
}
html_show_sourcelink = False
