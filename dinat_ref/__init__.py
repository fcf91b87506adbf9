"""dinat-ref: Neighborhood Attention, Dilated Neighborhood Attention and DiNAT.

A readable NumPy reference (:mod:`dinat_ref.numpy`) beside a fast PyTorch path
(:mod:`dinat_ref.torch`), one neighborhood rule shared by both
(:mod:`dinat_ref.neighborhood`), visualizers (:mod:`dinat_ref.viz`) and a kernel
verifier (:mod:`dinat_ref.testing`).
"""

__version__ = "0.1.0"

from dinat_ref import _moved  # noqa: E402
from dinat_ref.config import PRESETS, DinatConfig, preset_names  # noqa: E402
from dinat_ref.hf.image_processor import DinatImageProcessor  # noqa: E402

__all__ = ["__version__", "DinatConfig", "DinatImageProcessor", "PRESETS", "preset_names"]

_moved.install()  # old module paths (dinat_ref.weights, ...) keep working, with a warning
