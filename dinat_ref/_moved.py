"""Old module paths, kept importable: each is the module at its new place, with a DeprecationWarning.

The package was laid out in layers (the reference at the centre; ``hf/``, ``viz/``, ``testing/``
around it; ``commands/`` outside). ``import dinat_ref.weights`` still works and gives
``dinat_ref.hf.weights`` itself (the same module object, so patching one patches the other).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings

# old module name -> new module name
MOVED: dict[str, str] = {
    "dinat_ref.modeling_utils": "dinat_ref.hf.modeling_utils",
    "dinat_ref.weights": "dinat_ref.hf.weights",
    "dinat_ref.outputs": "dinat_ref.hf.outputs",
    "dinat_ref.image_processor": "dinat_ref.hf.image_processor",
    "dinat_ref.atomic": "dinat_ref.hf.atomic",
    "dinat_ref.tour": "dinat_ref.commands.tour",
    "dinat_ref.neighborhood_cli": "dinat_ref.commands.neighborhood",
    "dinat_ref.convert_cli": "dinat_ref.commands.convert",
    "dinat_ref.classify": "dinat_ref.commands.classify",
    "dinat_ref.explore": "dinat_ref.commands.explore",
    "dinat_ref.finetune": "dinat_ref.commands.finetune",
    "dinat_ref.finetune.data": "dinat_ref.commands.finetune.data",
    "dinat_ref.finetune.train": "dinat_ref.commands.finetune.train",
    "dinat_ref.viz.figures": "dinat_ref.commands.figures",
    "dinat_ref.testing.cli": "dinat_ref.commands.verify",
    "dinat_ref.train_digits": "dinat_ref.torch.digits",
    "dinat_ref.testing.pytest": "dinat_ref.testing.pytest_plugin",
    "dinat_ref.viz.neighborhood": "dinat_ref.viz.windows",
    "dinat_ref.viz.receptive_field": "dinat_ref.viz.rf",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old name in :data:`MOVED` and loads it as the new module."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=False)

    def create_module(self, spec):
        new = MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; import it from there (the old path will be removed).",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module):
        pass  # already executed, under its new name


def install() -> None:
    """Put the finder first: ``dinat_ref.finetune.data`` must not load a second copy of the module."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.insert(0, _Alias())
