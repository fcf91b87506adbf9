"""Neighborhood attention in PyTorch: the NumPy reference's API on fast backends.

>>> from dinat_ref.torch import na2d, explain_backend
>>> out = na2d(q, k, v, kernel_size=7, dilation=2, rpb=rpb)      # doctest: +SKIP
>>> print(explain_backend(q, k, v, kernel_size=7, rpb=rpb))       # doctest: +SKIP
"""

from dinat_ref.torch.functional import (
    BACKENDS,
    BackendChoice,
    explain_backend,
    na1d,
    na1d_av,
    na1d_qk,
    na2d,
    na2d_av,
    na2d_qk,
    na3d,
    na3d_av,
    na3d_qk,
    na_av,
    na_forward,
    na_qk,
)
from dinat_ref.torch.model import DinatBackbone, DinatForImageClassification, DinatModel

__all__ = [
    "na1d", "na2d", "na3d", "na1d_qk", "na2d_qk", "na3d_qk", "na1d_av", "na2d_av", "na3d_av",
    "na_forward", "na_qk", "na_av", "explain_backend", "BackendChoice", "BACKENDS",
    "DinatModel", "DinatForImageClassification", "DinatBackbone",
]
