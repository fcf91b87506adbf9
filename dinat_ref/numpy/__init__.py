"""The NumPy reference: neighborhood attention and the DiNAT model, read like a textbook."""

from dinat_ref.numpy.attention import (  # noqa: I001 (grouped by dimension, to read)
    na1d, na1d_av, na1d_backward, na1d_qk,
    na2d, na2d_av, na2d_backward, na2d_qk,
    na3d, na3d_av, na3d_backward, na3d_qk,
    na_av, na_backward, na_forward, na_qk,
)
from dinat_ref.numpy.model import DinatBackbone, DinatForImageClassification, DinatModel

__all__ = [
    "na1d", "na2d", "na3d", "na1d_qk", "na2d_qk", "na3d_qk", "na1d_av", "na2d_av", "na3d_av",
    "na1d_backward", "na2d_backward", "na3d_backward", "na_forward", "na_qk", "na_av", "na_backward",
    "DinatModel", "DinatForImageClassification", "DinatBackbone",
]
