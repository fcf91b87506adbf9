"""The ``dinat-ref`` subcommands, one module each (``add_arguments(parser)`` and ``run(args) -> int``).

Commands sit on the outside of the package: they may import anything in it, and nothing in the
library imports them. :mod:`dinat_ref.cli` dispatches to them.
"""
