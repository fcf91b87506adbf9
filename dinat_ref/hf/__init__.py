"""The Hugging Face face of the model: what makes the NumPy and torch DiNATs drop-ins for ``transformers``.

* :mod:`~dinat_ref.hf.modeling_utils`: the shared ``from_pretrained`` / ``save_pretrained`` / output plumbing
  of both model families;
* :mod:`~dinat_ref.hf.weights`: checkpoints on disk (one load path, shapes, sharding, SHI-Labs conversion);
* :mod:`~dinat_ref.hf.outputs`: ``transformers``-style output classes;
* :mod:`~dinat_ref.hf.image_processor`: :class:`~dinat_ref.hf.image_processor.DinatImageProcessor`;
* :mod:`~dinat_ref.hf.atomic`: all-or-nothing writes of files.

Nothing here is needed to read the reference; everything here is needed to load a real checkpoint.
"""
