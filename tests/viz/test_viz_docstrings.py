"""The plotting functions' docstrings, as ``help()`` and the API pages show them.

Shared arguments are written once in :data:`dinat_ref.viz.style.ARG_DOCS` and filled in
by :func:`dinat_ref.viz.style.docstring`; these tests read the result through Sphinx's
own Google-style parser (napoleon), so a lost placeholder, a broken indent or an
argument no ``Args:`` entry names fails here before it reaches the docs.
"""

from __future__ import annotations

import inspect
import re

import pytest

pytest.importorskip("matplotlib")
napoleon = pytest.importorskip("sphinx.ext.napoleon")

from dinat_ref.viz import attention_maps, rf, rpb, statistics, windows  # noqa: E402
from dinat_ref.viz.style import docstring  # noqa: E402

PLOTS = [getattr(m, name) for m in (windows, rf, rpb, statistics, attention_maps)
         for name in m.__all__ if name.startswith("plot_") or name.endswith("_figure")]


def _params(doc: str) -> set[str]:
    """The argument names of napoleon's ``:param a, b:`` fields (what autodoc renders)."""
    text = str(napoleon.GoogleDocstring(doc, napoleon.Config(napoleon_use_param=True)))
    names = set()
    for field in re.findall(r"^:param ([^:]+):", text, flags=re.MULTILINE):
        names.update(n.strip().lstrip("\\*") for n in field.split(","))  # "\*\*style"
    return names


@pytest.mark.parametrize("func", PLOTS, ids=lambda f: f.__name__)
def test_every_argument_is_documented(func):
    doc = inspect.getdoc(func)
    assert "%(" not in doc, f"{func.__name__}: a placeholder was left unfilled"
    wanted, named = set(inspect.signature(func).parameters), _params(doc)
    assert not wanted - named, f"{func.__name__}: Args does not name {sorted(wanted - named)}"
    # A name that is no argument: an entry's continuation line lost its indent.
    assert not named - wanted, f"{func.__name__}: Args names {sorted(named - wanted)}"


def test_a_shared_entry_keeps_its_argument_indent():
    @docstring
    def f(kernel_size=3, stride=1, dilation=1, is_causal=False):
        """Summary.

        Args:
            %(window_args)s

        Returns:
            Nothing.
        """

    assert _params(inspect.getdoc(f)) == {"kernel_size", "stride", "dilation", "is_causal"}
    lines = f.__doc__.splitlines()
    first = next(i for i, line in enumerate(lines) if "kernel_size, stride" in line)
    # The entry at the placeholder's indent, its continuation deeper (napoleon's rule).
    assert lines[first].startswith(" " * 12 + "kernel_size")
    assert lines[first + 1].startswith(" " * 16 + ":func:")


def test_per_function_values_fill_inline_placeholders():
    @docstring(scale="0 to 1")
    def f(cmap=None, norm=None, vmin=None, vmax=None):
        """Summary.

        Args:
            %(colour_args)s
        """

    assert "norm: colour normalisation (default: 0 to 1)." in f.__doc__
    assert _params(inspect.getdoc(f)) == {"cmap", "norm", "vmin", "vmax"}


def test_unknown_placeholder_names_itself():
    with pytest.raises(ValueError, match=r"f: the docstring has %\(windw_args\)s; known names: .*window"):
        @docstring
        def f():
            """Args:
                %(windw_args)s
            """
    with pytest.raises(ValueError, match=r"%\(scale\)s"):  # colour_args needs the function's scale
        @docstring
        def g():
            """Args:
                %(colour_args)s
            """
