"""Pictures of neighborhoods, receptive fields and attention maps.

:mod:`dinat_ref.viz.terminal` needs nothing but NumPy; the matplotlib figures live in
the other modules of this package and need the ``viz`` extra.
"""
