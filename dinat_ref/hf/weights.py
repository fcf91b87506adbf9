"""DiNAT weights: one mapping of Hugging Face names to arrays, for both models.

Both :mod:`dinat_ref.numpy.model` and :mod:`dinat_ref.torch.model` read the same
``{name: array}`` dictionary, with Hugging Face ``transformers``' parameter names
(``dinat.encoder.levels.0.layers.1.attention.self.rpb``, ...). This module:

* lists the names and shapes a config implies (:func:`expected_shapes`), which is also
  how parameters are counted without building a model;
* loads and saves checkpoints without ever executing pickled code: ``model.safetensors``
  (NumPy needs no torch for these), sharded ``*.safetensors.index.json``, or
  ``pytorch_model.bin`` through ``torch.load(weights_only=True)``;
* checks a checkpoint against a model in one pass and reports *every* missing,
  unexpected and mis-shaped key in one error, before anything is loaded;
* converts the original SHI-Labs checkpoints (https://github.com/SHI-Labs/Neighborhood-Attention-Transformer)
  to Hugging Face names (:func:`convert_shi_labs`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from math import prod
from typing import Any

import numpy as np

from dinat_ref.config import PRESETS, DinatConfig

__all__ = [
    "MODEL_KINDS", "StateDictError", "mismatch_error", "expected_shapes", "count_parameters",
    "check_state_dict", "adapt_state_dict", "load_state_dict", "save_state_dict", "save_pretrained",
    "find_weights_file", "random_state_dict", "convert_shi_labs", "infer_shi_labs_config",
    "load_shi_labs_checkpoint",
]

# "classification": DinatForImageClassification ("dinat." prefix + "classifier.");
# "model": DinatModel; "backbone": DinatBackbone (no final layernorm, + hidden_states_norms).
MODEL_KINDS = ("classification", "model", "backbone")
SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
TORCH_WEIGHTS = "pytorch_model.bin"
TORCH_INDEX = "pytorch_model.bin.index.json"


class StateDictError(ValueError):
    """A checkpoint does not fit a model; the message names every offending key."""


# ----------------------------------------------------------------------------------------
# Names and shapes
# ----------------------------------------------------------------------------------------

def _layer_shapes(config: DinatConfig, dim: int, heads: int) -> dict[str, tuple[int, ...]]:
    """One encoder layer, relative names."""
    k2 = 2 * config.kernel_size - 1
    hidden = int(config.mlp_ratio * dim)
    s: dict[str, tuple[int, ...]] = {
        "layernorm_before.weight": (dim,), "layernorm_before.bias": (dim,),
        "attention.self.rpb": (heads, k2, k2),
    }
    for proj in ("query", "key", "value"):
        s[f"attention.self.{proj}.weight"] = (dim, dim)
        if config.qkv_bias:
            s[f"attention.self.{proj}.bias"] = (dim,)
    s.update({
        "attention.output.dense.weight": (dim, dim), "attention.output.dense.bias": (dim,),
        "layernorm_after.weight": (dim,), "layernorm_after.bias": (dim,),
        "intermediate.dense.weight": (hidden, dim), "intermediate.dense.bias": (hidden,),
        "output.dense.weight": (dim, hidden), "output.dense.bias": (dim,),
    })
    if config.layer_scale_init_value > 0:
        s["layer_scale_parameters"] = (2, dim)
    return s


def _trunk_shapes(config: DinatConfig) -> dict[str, tuple[int, ...]]:
    """Embeddings + encoder (shared by all three models), relative names."""
    e, c = config.embed_dim, config.num_channels
    s: dict[str, tuple[int, ...]] = {
        "embeddings.patch_embeddings.projection.0.weight": (e // 2, c, 3, 3),
        "embeddings.patch_embeddings.projection.0.bias": (e // 2,),
        "embeddings.patch_embeddings.projection.1.weight": (e, e // 2, 3, 3),
        "embeddings.patch_embeddings.projection.1.bias": (e,),
        "embeddings.norm.weight": (e,), "embeddings.norm.bias": (e,),
    }
    for i, (dim, depth, heads) in enumerate(
            zip(config.stage_dims(), config.depths, config.num_heads, strict=True)):
        for j in range(depth):
            for name, shape in _layer_shapes(config, dim, heads).items():
                s[f"encoder.levels.{i}.layers.{j}.{name}"] = shape
        if i < config.num_layers - 1:
            s[f"encoder.levels.{i}.downsample.reduction.weight"] = (2 * dim, dim, 3, 3)
            s[f"encoder.levels.{i}.downsample.norm.weight"] = (2 * dim,)
            s[f"encoder.levels.{i}.downsample.norm.bias"] = (2 * dim,)
    return s


def backbone_channels(config: DinatConfig) -> dict[str, int]:
    """Channels of every backbone feature map, by stage name (taken before downsampling)."""
    return {"stem": config.embed_dim, **{f"stage{i + 1}": d for i, d in enumerate(config.stage_dims())}}


def expected_shapes(config: DinatConfig, model: str = "classification") -> dict[str, tuple[int, ...]]:
    """Every parameter name (Hugging Face's) and shape of a model built from ``config``.

    Args:
        model: "classification" (DinatForImageClassification), "model" (DinatModel) or
            "backbone" (DinatBackbone).
    """
    if model not in MODEL_KINDS:
        raise ValueError(f"expected_shapes: model={model!r} must be one of {MODEL_KINDS}.")
    config.validate()  # the values must fit together into a network
    trunk = _trunk_shapes(config)
    h = config.hidden_size
    if model == "backbone":
        ch = backbone_channels(config)
        for stage in config.out_features:
            trunk[f"hidden_states_norms.{stage}.weight"] = (ch[stage],)
            trunk[f"hidden_states_norms.{stage}.bias"] = (ch[stage],)
        return trunk
    trunk.update({"layernorm.weight": (h,), "layernorm.bias": (h,)})
    if model == "model":
        return trunk
    out = {f"dinat.{k}": v for k, v in trunk.items()}
    if config.num_labels > 0:
        out["classifier.weight"] = (config.num_labels, h)
        out["classifier.bias"] = (config.num_labels,)
    return out


def count_parameters(config: DinatConfig, model: str = "classification") -> int:
    """Number of parameters, from :func:`expected_shapes` (no model is built)."""
    return sum(prod(s) for s in expected_shapes(config, model).values())


# ----------------------------------------------------------------------------------------
# Checking and adapting a state dict to a model
# ----------------------------------------------------------------------------------------

def _shape(a: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in a.shape)


def mismatch_error(where: str, missing: list[str], unexpected: list[str], misshaped: list[str],
                   hint: str = "") -> StateDictError:
    """The one error naming every missing, unexpected and mis-shaped (``"name: shapes"``) key."""
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {', '.join(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {', '.join(unexpected)}")
    if misshaped:
        parts.append(f"{len(misshaped)} mis-shaped key(s): {'; '.join(misshaped)}{hint}")
    return StateDictError(f"{where}: the checkpoint does not match the model; nothing was loaded. "
                          + ". ".join(parts) + ".")


def check_state_dict(state_dict: Mapping[str, Any], expected: Mapping[str, tuple[int, ...]],
                     where: str = "load") -> None:
    """Raise :class:`StateDictError` naming every missing, unexpected and mis-shaped key."""
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    misshaped = [f"{k}: checkpoint {_shape(state_dict[k])} vs model {tuple(expected[k])}"
                 for k in expected if k in state_dict and _shape(state_dict[k]) != tuple(expected[k])]
    if missing or unexpected or misshaped:
        raise mismatch_error(where, missing, unexpected, misshaped)


def adapt_state_dict(state_dict: Mapping[str, Any], config: DinatConfig, model: str) -> dict[str, Any]:
    """Move a checkpoint between the three models, as Hugging Face does.

    * a ``DinatModel`` checkpoint (no ``dinat.`` prefix) feeds a classifier's ``dinat.`` trunk;
    * a classifier checkpoint feeds ``DinatModel`` (prefix stripped, ``classifier.*`` dropped);
    * either feeds ``DinatBackbone`` (``layernorm.*`` and ``classifier.*`` dropped); backbone
      ``hidden_states_norms`` absent from such a checkpoint start as identity LayerNorms
      (weight 1, bias 0), which is what a freshly built backbone holds.

    Anything else is left for :func:`check_state_dict` to report.
    """
    sd = dict(state_dict)
    has_prefix = any(k.startswith("dinat.") for k in sd)
    if model == "classification":
        if not has_prefix and any(k.startswith("embeddings.") for k in sd):
            sd = {(k if k.startswith("classifier.") else f"dinat.{k}"): v for k, v in sd.items()}
        return sd
    if has_prefix:
        sd = {k[len("dinat."):]: v for k, v in sd.items() if not k.startswith("classifier.")}
    if model == "backbone" and not any(k.startswith("hidden_states_norms.") for k in sd):
        sd = {k: v for k, v in sd.items() if not k.startswith("layernorm.")}
        like = next(iter(sd.values()), None)
        for name, shape in expected_shapes(config, "backbone").items():
            if name.startswith("hidden_states_norms.") and like is not None:
                fill = 1.0 if name.endswith(".weight") else 0.0
                sd[name] = _full_like(like, shape, fill)
    return sd


def _full_like(like: Any, shape: tuple[int, ...], fill: float) -> Any:
    if hasattr(like, "new_full"):  # a torch tensor
        return like.new_full(shape, fill)
    return np.full(shape, fill, dtype=like.dtype)


# ----------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------

def find_weights_file(directory: str | os.PathLike) -> str:
    """The weights file of a model directory, safetensors first."""
    d = os.fspath(directory)
    for name in (SAFE_WEIGHTS, SAFE_INDEX, TORCH_WEIGHTS, TORCH_INDEX):
        p = os.path.join(d, name)
        if os.path.isfile(p):
            return p
    raise FileNotFoundError(f"no weights in {d!r}: expected one of {SAFE_WEIGHTS}, {SAFE_INDEX}, "
                            f"{TORCH_WEIGHTS}, {TORCH_INDEX}.")


def _torch_load(path: str) -> Any:
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(f"{path!r} is a PyTorch pickle; reading it needs torch installed "
                          f"(or convert it to safetensors).") from e
    return torch.load(path, map_location="cpu", weights_only=True)


def _to_framework(sd: Mapping[str, Any], framework: str) -> dict[str, Any]:
    if framework == "torch":
        import torch

        return {k: (v if isinstance(v, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(v)))
                for k, v in sd.items()}
    out = {}
    for k, v in sd.items():
        if hasattr(v, "detach"):  # torch tensor -> numpy (bfloat16 has no numpy dtype)
            import torch

            v = v.detach().cpu()
            v = (v.float() if v.dtype == torch.bfloat16 else v).numpy()
        out[k] = np.asarray(v)
    return out


def _read_index(p: str) -> dict[str, str]:
    """The ``weight_map`` of a sharded checkpoint's index, every shard inside its directory."""
    with open(p, encoding="utf-8") as fh:
        try:
            index = json.load(fh)
        except json.JSONDecodeError as e:
            raise ValueError(f"load_state_dict: {p!r} is not valid JSON: {e}") from e
    if not isinstance(index, dict) or not isinstance(index.get("weight_map"), dict):
        raise ValueError(f"load_state_dict: {p!r} has no \"weight_map\" object; a sharded checkpoint's "
                         f"index maps every parameter name to its shard file.")
    root = os.path.realpath(os.path.dirname(p))
    for shard in sorted(set(index["weight_map"].values())):
        target = os.path.realpath(os.path.join(root, str(shard)))
        if os.path.isabs(str(shard)) or os.path.commonpath([root, target]) != root:
            raise ValueError(f"load_state_dict: {p!r} names the shard {shard!r}, which lies outside the "
                             f"checkpoint directory {root!r}; shards must be files inside it.")
    return index["weight_map"]


# safetensors dtype names -> NumPy dtypes (BF16 has none: read as uint16, upcast to float32)
_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
              "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def _load_safetensors_numpy(p: str) -> dict[str, np.ndarray]:
    """A safetensors file as NumPy arrays; bfloat16 tensors are upcast (exactly) to float32."""
    with open(p, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n))
        if not any(isinstance(v, dict) and v.get("dtype") == "BF16" for v in header.values()):
            from safetensors.numpy import load_file

            return dict(load_file(p))
        data = fh.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        if info["dtype"] == "BF16":  # the top 16 bits of a float32
            bits = np.frombuffer(data[start:end], dtype="<u2").astype(np.uint32) << 16
            out[name] = bits.view(np.float32).reshape(info["shape"])
        else:
            dtype = np.dtype(_ST_DTYPES[info["dtype"]]).newbyteorder("<")
            out[name] = np.frombuffer(data[start:end], dtype=dtype).reshape(info["shape"]).copy()
    return out


def load_state_dict(path: str | os.PathLike, framework: str = "numpy") -> dict[str, Any]:
    """Read a checkpoint file or model directory into ``{name: array}``.

    Args:
        path: a directory (see :func:`find_weights_file`), a ``.safetensors`` file, a sharded
            ``.index.json`` (its shards must lie inside its directory), or a PyTorch
            ``.bin``/``.pt``/``.pth`` (read with ``weights_only=True``).
        framework: "numpy" (safetensors files need no torch; bfloat16 tensors are upcast to
            float32, NumPy having no bfloat16) or "torch".

    Returns:
        ``{name: array}``, NumPy arrays or torch tensors.

    Raises:
        ValueError: an index without ``weight_map`` or naming a shard outside its directory.
    """
    if framework not in ("numpy", "torch"):
        raise ValueError(f"load_state_dict: framework={framework!r} must be 'numpy' or 'torch'.")
    p = os.fspath(path)
    if os.path.isdir(p):
        p = find_weights_file(p)
    if not os.path.isfile(p):
        raise FileNotFoundError(f"load_state_dict: no such file {p!r}.")
    if p.endswith(".index.json"):
        weight_map = _read_index(p)
        out: dict[str, Any] = {}
        for shard in sorted(set(weight_map.values())):
            out.update(load_state_dict(os.path.join(os.path.dirname(p), shard), framework))
        return out
    if p.endswith(".safetensors"):
        if framework == "numpy":
            return _load_safetensors_numpy(p)
        from safetensors.torch import load_file

        return dict(load_file(p))
    obj = _torch_load(p)
    if not isinstance(obj, Mapping):
        raise ValueError(f"load_state_dict: {p!r} holds a {type(obj).__name__}, not a state dict.")
    return _to_framework(obj, framework)


def save_state_dict(state_dict: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write ``{name: array}`` (NumPy arrays or torch tensors) as one safetensors file."""
    p = os.fspath(path)
    if any(hasattr(v, "detach") for v in state_dict.values()):
        from safetensors.torch import save_file

        save_file({k: v.detach().contiguous() for k, v in state_dict.items()}, p, metadata={"format": "pt"})
    else:
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v) for k, v in state_dict.items()}, p, metadata={"format": "pt"})


def save_pretrained(directory: str | os.PathLike, config: DinatConfig, state_dict: Mapping[str, Any],
                    architecture: str | None = None) -> None:
    """Write a model directory: ``model.safetensors`` then ``config.json``, all or nothing.

    Both files are written to temporary files in ``directory`` and renamed into place,
    weights first and config last (:func:`dinat_ref.hf.atomic.atomic_files`); on any failure the
    directory holds exactly what it held before.

    Args:
        directory: the model directory (created if missing).
        config: written as ``config.json``.
        state_dict: ``{name: array}`` with Hugging Face names.
        architecture: the model class name recorded in ``config.json``'s ``architectures``.
    """
    from dinat_ref.hf.atomic import atomic_files

    if architecture is not None:
        config.extra["architectures"] = [architecture]
    text = config.to_json_string()
    with atomic_files(directory) as stage:
        save_state_dict(state_dict, stage(SAFE_WEIGHTS))
        with open(stage("config.json"), "w", encoding="utf-8") as fh:
            fh.write(text)


def random_state_dict(config: DinatConfig, model: str = "classification", seed: int = 0,
                      dtype: Any = np.float32) -> dict[str, np.ndarray]:
    """Random weights with every part switched on: non-zero RPB, biases and layer scale.

    Linear/conv weights ~ N(0, 1 / fan_in) so activations stay O(1); LayerNorm weights
    ~ 1 + N(0, 0.1^2); biases ~ N(0, 0.1^2); RPB ~ N(0, 0.5^2); layer scale ~ U(0.5, 1.5).
    Meant for cross-checks, tutorials and benchmarks (not an init to train from).
    """
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in expected_shapes(config, model).items():
        if name.endswith("rpb"):
            a = rng.normal(0, 0.5, shape)
        elif name.endswith("layer_scale_parameters"):
            a = rng.uniform(0.5, 1.5, shape)
        elif "norm" in name and name.endswith("weight"):
            a = 1 + rng.normal(0, 0.1, shape)
        elif name.endswith("bias"):
            a = rng.normal(0, 0.1, shape)
        else:
            fan_in = prod(shape[1:])
            a = rng.normal(0, 1 / np.sqrt(fan_in), shape)
        out[name] = a.astype(dtype)
    return out


# ----------------------------------------------------------------------------------------
# The original SHI-Labs checkpoints
# ----------------------------------------------------------------------------------------

# SHI-Labs name (after levels.i.blocks.j.) -> Hugging Face name (after levels.i.layers.j.)
_SHI_LAYER = {
    "norm1": "layernorm_before", "norm2": "layernorm_after", "attn.rpb": "attention.self.rpb",
    "attn.proj": "attention.output.dense", "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense",
}
_SHI_TOP = {
    "patch_embed.proj.0": "dinat.embeddings.patch_embeddings.projection.0",
    "patch_embed.proj.1": "dinat.embeddings.patch_embeddings.projection.1",
    "patch_embed.norm": "dinat.embeddings.norm", "norm": "dinat.layernorm", "head": "classifier",
}
_BLOCK = re.compile(r"^levels\.(\d+)\.blocks\.(\d+)\.(.+)$")
_DOWN = re.compile(r"^levels\.(\d+)\.downsample\.(reduction\.weight|norm\.weight|norm\.bias)$")


def _unwrap(obj: Any) -> dict[str, Any]:
    """Training checkpoints nest the weights (``{"model": ...}``) and DDP adds ``module.``."""
    for key in ("model", "state_dict", "model_ema", "state_dict_ema"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    sd = dict(obj)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _stack(a: Any, b: Any) -> Any:
    if hasattr(a, "detach"):
        import torch

        return torch.stack([a, b])
    return np.stack([a, b])


def convert_shi_labs(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """SHI-Labs NAT/DiNAT classification weights -> Hugging Face ``DinatForImageClassification`` names.

    * ``attn.qkv`` ``(3C, C)`` is split in three ``(C, C)`` rows blocks: NATTEN reshapes the
      fused output as ``(..., 3, heads, head_dim)``, so rows ``[0:C]`` are the query,
      ``[C:2C]`` the key and ``[2C:3C]`` the value (same for the bias).
    * ``gamma1`` / ``gamma2`` (layer scale of the attention / MLP branch) become the rows of
      ``layer_scale_parameters`` ``(2, C)``.
    * everything else is renamed one to one. An unknown key is an error naming it.
    """
    sd = _unwrap(state_dict)
    out: dict[str, Any] = {}
    unknown: list[str] = []
    gammas: dict[str, dict[str, Any]] = {}
    for name, value in sd.items():
        stem, _, leaf = name.rpartition(".")
        if stem in _SHI_TOP and leaf in ("weight", "bias"):
            out[f"{_SHI_TOP[stem]}.{leaf}"] = value
            continue
        m = _DOWN.match(name)
        if m:
            out[f"dinat.encoder.levels.{m[1]}.downsample.{m[2]}"] = value
            continue
        m = _BLOCK.match(name)
        if not m:
            unknown.append(name)
            continue
        hf = f"dinat.encoder.levels.{m[1]}.layers.{m[2]}"
        rest = m[3]
        if rest in ("gamma1", "gamma2"):
            gammas.setdefault(hf, {})[rest] = value
        elif rest in ("attn.qkv.weight", "attn.qkv.bias"):
            c = value.shape[0] // 3
            leaf = rest.rsplit(".", 1)[1]
            for t, proj in enumerate(("query", "key", "value")):
                out[f"{hf}.attention.self.{proj}.{leaf}"] = value[t * c:(t + 1) * c]
        elif rest == "attn.rpb":
            out[f"{hf}.attention.self.rpb"] = value
        else:
            stem, _, leaf = rest.rpartition(".")
            if stem in _SHI_LAYER and leaf in ("weight", "bias"):
                out[f"{hf}.{_SHI_LAYER[stem]}.{leaf}"] = value
            else:
                unknown.append(name)
    for hf, g in gammas.items():
        if set(g) != {"gamma1", "gamma2"}:
            unknown.append(f"{hf}: only {sorted(g)} of gamma1/gamma2")
            continue
        out[f"{hf}.layer_scale_parameters"] = _stack(g["gamma1"], g["gamma2"])
    if unknown:
        raise StateDictError(f"convert_shi_labs: {len(unknown)} key(s) are not part of a SHI-Labs "
                             f"NAT/DiNAT classifier: {', '.join(unknown)}; nothing was converted.")
    return out


def infer_shi_labs_config(state_dict: Mapping[str, Any], dilations: list[list[int]] | None = None,
                          **overrides: Any) -> DinatConfig:
    """Architecture read off a SHI-Labs checkpoint's shapes.

    Dilations are not stored in a checkpoint: pass them, or the preset with the same shapes
    is used (an error if none or several presets fit, e.g. ``large`` vs ``large-384``).
    """
    sd = _unwrap(state_dict)
    try:
        embed_dim = _shape(sd["patch_embed.proj.1.weight"])[0]
        num_channels = _shape(sd["patch_embed.proj.0.weight"])[1]
    except KeyError as e:
        raise StateDictError(f"infer_shi_labs_config: no {e.args[0]!r}; not a SHI-Labs NAT/DiNAT "
                             f"checkpoint.") from None
    blocks: dict[int, set[int]] = {}
    for k in sd:
        m = _BLOCK.match(k)
        if m:
            blocks.setdefault(int(m[1]), set()).add(int(m[2]))
    depths = [len(blocks[i]) for i in sorted(blocks)]
    heads = [_shape(sd[f"levels.{i}.blocks.0.attn.rpb"])[0] for i in range(len(depths))]
    kernel_size = (_shape(sd["levels.0.blocks.0.attn.rpb"])[1] + 1) // 2
    mlp_ratio = _shape(sd["levels.0.blocks.0.mlp.fc1.weight"])[0] / embed_dim
    kwargs: dict[str, Any] = dict(
        embed_dim=embed_dim, num_channels=num_channels, depths=depths, num_heads=heads,
        kernel_size=kernel_size, mlp_ratio=mlp_ratio, qkv_bias="levels.0.blocks.0.attn.qkv.bias" in sd,
        layer_scale_init_value=1e-5 if "levels.0.blocks.0.gamma1" in sd else 0.0,
        num_labels=_shape(sd["head.weight"])[0] if "head.weight" in sd else 0,
    )
    if dilations is None:
        fits = [n for n, p in PRESETS.items()
                if all(p.get(k, DinatConfig.__dataclass_fields__[k].default) == v for k, v in kwargs.items()
                       if k in ("embed_dim", "depths", "num_heads", "kernel_size", "mlp_ratio"))]
        if len(fits) != 1:
            raise ValueError(f"infer_shi_labs_config: the checkpoint's shapes (embed_dim={embed_dim}, "
                             f"depths={depths}, num_heads={heads}, kernel_size={kernel_size}) fit presets "
                             f"{fits}; dilations are not stored in a checkpoint, so give them (or a preset).")
        dilations = PRESETS[fits[0]]["dilations"]
        kwargs["drop_path_rate"] = PRESETS[fits[0]]["drop_path_rate"]
    kwargs.update(overrides)
    return DinatConfig(dilations=dilations, **kwargs)


def load_shi_labs_checkpoint(path: str | os.PathLike, framework: str = "numpy") -> dict[str, Any]:
    """Read an original ``.pth`` (``torch.load(weights_only=True)``) or safetensors file, unwrapped."""
    p = os.fspath(path)
    if p.endswith(".safetensors"):
        return load_state_dict(p, framework)
    return _to_framework(_unwrap(_torch_load(p)), framework)
