"""Checkpoints: safetensors / pytorch_model.bin / sharded loading, all-or-nothing key checks,
moving weights between the three models, and the SHI-Labs converter (function and CLI)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dinat_ref import DinatConfig
from dinat_ref.hf.weights import (
    StateDictError,
    convert_shi_labs,
    count_parameters,
    expected_shapes,
    infer_shi_labs_config,
    load_state_dict,
    random_state_dict,
    save_state_dict,
)
from dinat_ref.numpy import na2d
from dinat_ref.numpy.layers import conv2d, gelu, layer_norm

CFG = DinatConfig(embed_dim=16, depths=[2, 2], num_heads=[2, 4], kernel_size=3,
                  dilations=[[1, 2], [1, 1]], mlp_ratio=2.0, layer_scale_init_value=0.5, num_labels=5)


def _same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


def test_safetensors_round_trip_and_numpy_needs_no_torch(tmp_path):
    sd = random_state_dict(CFG, seed=3)
    save_state_dict(sd, tmp_path / "model.safetensors")
    CFG.save_pretrained(tmp_path)
    _same(load_state_dict(tmp_path), sd)
    # A fresh interpreter where `import torch` fails still loads the directory and runs the model.
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from dinat_ref.numpy import DinatForImageClassification\n"
        f"m = DinatForImageClassification.from_pretrained({str(tmp_path)!r})\n"
        "print(m(np.zeros((1, 3, 32, 32), np.float32)).logits.shape)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "(1, 5)" in out.stdout


def test_pytorch_bin_and_sharded_checkpoints_load(tmp_path):
    torch = pytest.importorskip("torch")
    sd = random_state_dict(CFG, seed=4)
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, tmp_path / "pytorch_model.bin")
    _same(load_state_dict(tmp_path, "numpy"), sd)
    loaded = load_state_dict(tmp_path / "pytorch_model.bin", "torch")
    assert all(isinstance(v, torch.Tensor) for v in loaded.values())
    _same({k: v.numpy() for k, v in loaded.items()}, sd)
    # Two shards and an index, as large Hugging Face checkpoints come.
    shard_dir = tmp_path / "sharded"
    shard_dir.mkdir()
    names = sorted(sd)
    half = len(names) // 2
    weight_map = {}
    for i, part in enumerate((names[:half], names[half:])):
        fname = f"model-0000{i + 1}-of-00002.safetensors"
        save_state_dict({k: sd[k] for k in part}, shard_dir / fname)
        weight_map.update({k: fname for k in part})
    (shard_dir / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    _same(load_state_dict(shard_dir), sd)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickles_with_code_are_refused(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"x": _Evil()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(Exception, match="(?i)weights.only|unpickl"):
        load_state_dict(tmp_path)


def test_missing_unexpected_and_misshaped_keys_are_named_in_one_error():
    sd = random_state_dict(CFG, seed=5)
    del sd["dinat.encoder.levels.1.layers.0.attention.self.rpb"]
    del sd["classifier.bias"]
    sd["dinat.encoder.levels.0.layers.0.attention.self.qkv.weight"] = np.zeros((48, 16), np.float32)
    sd["dinat.layernorm.weight"] = np.zeros(7, np.float32)
    from dinat_ref.numpy import DinatForImageClassification

    with pytest.raises(StateDictError) as e:
        DinatForImageClassification(CFG, sd)
    msg = str(e.value)
    for name in ("dinat.encoder.levels.1.layers.0.attention.self.rpb", "classifier.bias",
                 "attention.self.qkv.weight", "dinat.layernorm.weight: checkpoint (7,) vs model (32,)",
                 "2 missing", "1 unexpected", "1 mis-shaped", "nothing was loaded"):
        assert name in msg, name


def test_a_failed_torch_load_changes_nothing():
    torch = pytest.importorskip("torch")
    from dinat_ref.torch import DinatForImageClassification

    model = DinatForImageClassification(CFG)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sd = {k: torch.from_numpy(v) for k, v in random_state_dict(CFG, seed=6).items()}
    sd["classifier.weight"] = torch.zeros(3, 32)  # the last key in order: everything before it "fits"
    with pytest.raises(StateDictError, match="classifier.weight"):
        model.load_checkpoint(sd)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_weights_move_between_models_as_in_hugging_face(tmp_path):
    from dinat_ref.numpy import DinatBackbone, DinatForImageClassification, DinatModel

    sd = random_state_dict(CFG, seed=7, dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(1, 3, 32, 32))
    clf = DinatForImageClassification(CFG, sd, dtype=np.float64)
    clf.save_pretrained(tmp_path)
    trunk = DinatModel.from_pretrained(tmp_path, dtype=np.float64)  # "dinat." stripped, classifier dropped
    w, b = sd["classifier.weight"], sd["classifier.bias"]
    np.testing.assert_allclose(trunk(x).pooler_output @ w.T + b, clf(x).logits, rtol=1e-12, atol=1e-12)
    cfg = dataclasses.replace(CFG, out_features=["stem", "stage1", "stage2"], out_indices=None)
    bb = DinatBackbone(cfg, sd, dtype=np.float64)  # hidden_states_norms start as identity LayerNorms
    maps = bb(x).feature_maps
    assert [m.shape[1] for m in maps] == bb.channels == [16, 16, 32]
    # stage2 is the last stage: its map is the trunk's output before the final LayerNorm, normed
    hs = trunk(x, output_hidden_states=True).hidden_states[-1]
    np.testing.assert_allclose(maps[-1], layer_norm(hs, 1.0, 0.0).transpose(0, 3, 1, 2), atol=1e-12)


def test_count_parameters_counts_the_expected_shapes():
    shapes = expected_shapes(CFG, "model")
    assert count_parameters(CFG, "model") == sum(int(np.prod(s)) for s in shapes.values())
    assert count_parameters(CFG) - count_parameters(CFG, "model") == 5 * 32 + 5


# ----------------------------------------------------------------------------------------
# SHI-Labs checkpoints
# ----------------------------------------------------------------------------------------

def _shi_labs_checkpoint(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A NAT/DiNAT classifier in the SHI-Labs layout (names and shapes of classification/nat.py)."""
    e, k, ratio = 16, 3, 2
    sd = {"patch_embed.proj.0.weight": (e // 2, 3, 3, 3), "patch_embed.proj.0.bias": (e // 2,),
          "patch_embed.proj.1.weight": (e, e // 2, 3, 3), "patch_embed.proj.1.bias": (e,),
          "patch_embed.norm.weight": (e,), "patch_embed.norm.bias": (e,)}
    for i, (depth, heads) in enumerate([(2, 2), (2, 4)]):
        d = e * 2**i
        for j in range(depth):
            b = f"levels.{i}.blocks.{j}."
            sd.update({b + "norm1.weight": (d,), b + "norm1.bias": (d,),
                       b + "attn.qkv.weight": (3 * d, d), b + "attn.qkv.bias": (3 * d,),
                       b + "attn.rpb": (heads, 2 * k - 1, 2 * k - 1),
                       b + "attn.proj.weight": (d, d), b + "attn.proj.bias": (d,),
                       b + "norm2.weight": (d,), b + "norm2.bias": (d,),
                       b + "mlp.fc1.weight": (ratio * d, d), b + "mlp.fc1.bias": (ratio * d,),
                       b + "mlp.fc2.weight": (d, ratio * d), b + "mlp.fc2.bias": (d,),
                       b + "gamma1": (d,), b + "gamma2": (d,)})
        if i == 0:
            sd.update({"levels.0.downsample.reduction.weight": (2 * d, d, 3, 3),
                       "levels.0.downsample.norm.weight": (2 * d,),
                       "levels.0.downsample.norm.bias": (2 * d,)})
    sd.update({"norm.weight": (32,), "norm.bias": (32,), "head.weight": (5, 32), "head.bias": (5,)})
    return {n: rng.normal(0, 0.3, s) + (1.0 if "norm" in n and n.endswith("weight") else 0.0)
            for n, s in sd.items()}


def _shi_labs_forward(sd: dict, x: np.ndarray, dilations) -> np.ndarray:
    """The SHI-Labs NAT forward (fused qkv reshaped as NATTEN's (..., 3, heads, head_dim), gamma1/2)."""
    y = conv2d(x.transpose(0, 2, 3, 1), sd["patch_embed.proj.0.weight"], sd["patch_embed.proj.0.bias"], 2, 1)
    y = conv2d(y, sd["patch_embed.proj.1.weight"], sd["patch_embed.proj.1.bias"], 2, 1)
    y = layer_norm(y, sd["patch_embed.norm.weight"], sd["patch_embed.norm.bias"])
    for i, heads in enumerate((2, 4)):
        for j in range(2):
            p = f"levels.{i}.blocks.{j}."
            b, h, w, c = y.shape
            t = layer_norm(y, sd[p + "norm1.weight"], sd[p + "norm1.bias"])
            qkv = (t @ sd[p + "attn.qkv.weight"].T + sd[p + "attn.qkv.bias"]).reshape(b, h, w, 3, heads, -1)
            a = na2d(qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :], 3, dilation=dilations[i][j],
                     rpb=sd[p + "attn.rpb"]).reshape(b, h, w, c)
            a = a @ sd[p + "attn.proj.weight"].T + sd[p + "attn.proj.bias"]
            y = y + sd[p + "gamma1"] * a
            t = layer_norm(y, sd[p + "norm2.weight"], sd[p + "norm2.bias"])
            t = gelu(t @ sd[p + "mlp.fc1.weight"].T + sd[p + "mlp.fc1.bias"])
            y = y + sd[p + "gamma2"] * (t @ sd[p + "mlp.fc2.weight"].T + sd[p + "mlp.fc2.bias"])
        if i == 0:
            y = conv2d(y, sd["levels.0.downsample.reduction.weight"], None, 2, 1)
            y = layer_norm(y, sd["levels.0.downsample.norm.weight"], sd["levels.0.downsample.norm.bias"])
    y = layer_norm(y, sd["norm.weight"], sd["norm.bias"]).mean(axis=(1, 2))
    return y @ sd["head.weight"].T + sd["head.bias"]


def test_converted_shi_labs_weights_compute_the_original_network(rng):
    from dinat_ref.numpy import DinatForImageClassification

    shi = _shi_labs_checkpoint(rng)
    dil = [[1, 2], [1, 1]]
    cfg = infer_shi_labs_config(shi, dilations=dil)
    assert (cfg.embed_dim, cfg.depths, cfg.num_heads, cfg.kernel_size, cfg.mlp_ratio, cfg.num_labels) == \
        (16, [2, 2], [2, 4], 3, 2.0, 5)
    hf = convert_shi_labs({"model": {f"module.{k}": v for k, v in shi.items()}})  # wrapped, DDP prefix
    assert set(hf) == set(expected_shapes(cfg))
    np.testing.assert_array_equal(hf["dinat.encoder.levels.1.layers.1.attention.self.key.weight"],
                                  shi["levels.1.blocks.1.attn.qkv.weight"][32:64])
    np.testing.assert_array_equal(hf["dinat.encoder.levels.0.layers.0.layer_scale_parameters"][1],
                                  shi["levels.0.blocks.0.gamma2"])
    x = rng.normal(size=(2, 3, 32, 32))
    ours = DinatForImageClassification(cfg, hf, dtype=np.float64)(x).logits
    np.testing.assert_allclose(ours, _shi_labs_forward(shi, x, dil), rtol=1e-10, atol=1e-10)


def test_converter_rejects_foreign_keys_and_ambiguous_shapes(rng):
    shi = _shi_labs_checkpoint(rng)
    with pytest.raises(StateDictError, match="levels.0.blocks.0.attn.relative_position_bias_table"):
        convert_shi_labs({**shi, "levels.0.blocks.0.attn.relative_position_bias_table": np.zeros(3)})
    with pytest.raises(ValueError, match="dilations are not stored"):
        infer_shi_labs_config(shi)  # no preset has these shapes


def test_convert_cli_writes_a_directory_both_models_load(tmp_path, rng, capsys):
    torch = pytest.importorskip("torch")
    from dinat_ref.cli import main

    shi = _shi_labs_checkpoint(rng)
    torch.save({"model": {k: torch.from_numpy(v).float() for k, v in shi.items()}}, tmp_path / "ckpt.pth")
    cfg = infer_shi_labs_config(shi, dilations=[[1, 2], [1, 1]])
    cfg.to_json_file(tmp_path / "arch.json")
    out = tmp_path / "hf"
    args = ["convert", str(tmp_path / "ckpt.pth"), str(out), "--config", str(tmp_path / "arch.json")]
    assert main(args) == 0
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors"]
    import dinat_ref.numpy as dn
    import dinat_ref.torch as dt

    x = rng.normal(size=(1, 3, 32, 32))
    a = dn.DinatForImageClassification.from_pretrained(out, dtype=np.float64)(x).logits
    with torch.no_grad():
        th = dt.DinatForImageClassification.from_pretrained(out, dtype=torch.float64)
        b = th(torch.from_numpy(x)).logits
    np.testing.assert_allclose(a, b.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a, _shi_labs_forward(shi, x, [[1, 2], [1, 1]]), rtol=1e-5, atol=1e-5)
    # A preset whose shapes do not fit fails before writing anything.
    assert main(["convert", str(tmp_path / "ckpt.pth"), str(tmp_path / "bad"), "--preset", "mini"]) == 1
    assert "mis-shaped" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
