"""``dinat-ref explore``: write the interactive neighborhood explorer, one self-contained HTML page.

The page lets a reader play with the rule of :mod:`dinat_ref.neighborhood`: 1-D, 2-D or 3-D
grids (3-D one slice at a time), kernel size (odd or even), dilation, stride and causal per
axis; hover over a query (click to pin it) to see its keys colored by dilation group, its
window, the queries sharing it (stride), the RPB index of every key and its row of the
flattened ``Q x K`` mask; and a layer stack (DiNAT's NA / DiNA pattern, editable dilations)
with the exact receptive field of the query after each layer.

No server, no network, no CDN: the scripts and the stylesheet are inlined, so the file works
from ``file://``, inside the documentation site, or sent by mail. The page carries a
JavaScript port of the rule (``dinat_ref/assets/explorer/rule.js``) and exposes it as::

    window.dinat.neighbors(shape, kernelSize, stride, dilation, isCausal, query)

(arrays with one entry per axis) returning the keys as sorted row-major flat indices; the
tests compare it with :func:`dinat_ref.neighborhood.neighbors_of` in a headless browser.

Example::

    dinat-ref explore --out explorer.html
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

__all__ = ["build_page", "write_page"]

DEFAULT_OUT = "dinat_explorer.html"

# Placeholder in explorer.html -> asset file inlined there.
_INLINE = {
    "/*__CSS__*/": "explorer.css",
    "/*__RULE_JS__*/": "rule.js",
    "/*__EXPLORER_JS__*/": "explorer.js",
}


def _asset(name: str) -> str:
    return resources.files("dinat_ref").joinpath("assets", "explorer", name).read_text(encoding="utf-8")


def build_page() -> str:
    """The explorer as one HTML string, with its stylesheet and scripts inlined.

    Returns:
        The complete page (UTF-8 text); nothing in it is fetched from elsewhere.
    """
    from dinat_ref import __version__

    page = _asset("explorer.html")
    for marker, name in _INLINE.items():
        text = _asset(name)
        if "</script" in text.lower() or "</style" in text.lower():
            raise ValueError(f"build_page: the asset {name} contains a closing tag and cannot be inlined.")
        if page.count(marker) != 1:
            raise ValueError(f"build_page: explorer.html must hold the marker {marker} exactly once.")
        page = page.replace(marker, text)
    return page.replace("__VERSION__", __version__)


def write_page(out: str | Path = DEFAULT_OUT) -> Path:
    """Write the explorer to ``out``, creating nothing but that file.

    Args:
        out: path of the HTML file to write (its folder must exist).

    Returns:
        The path written.

    Raises:
        ValueError: ``out`` is a folder, or its folder does not exist.
    """
    out = Path(out)
    if out.is_dir():
        raise ValueError(
            f"write_page: out={str(out)!r} is a folder; give the path of an .html file to write."
        )
    if not out.parent.is_dir():
        raise ValueError(
            f"write_page: out={str(out)!r} is in the folder {str(out.parent)!r}, which does not exist; "
            f"create it first or choose another path."
        )
    page = build_page()  # all work done before the file is opened: nothing is half-written
    out.write_text(page, encoding="utf-8")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", default=DEFAULT_OUT, metavar="FILE",
        help=f"the HTML file to write (default ./{DEFAULT_OUT}); open it in any browser",
    )


def run(args: argparse.Namespace) -> int:
    try:
        path = write_page(args.out)
    except ValueError as err:
        print(f"dinat-ref explore: {err}", file=sys.stderr)
        return 2
    size_kb = path.stat().st_size / 1024
    print(f"wrote {path} ({size_kb:.0f} KB, self-contained); open it in a browser: {path.resolve().as_uri()}")
    return 0
