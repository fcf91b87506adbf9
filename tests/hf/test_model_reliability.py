"""The models under careless or hostile input: labels, half-written saves, shards outside the
checkpoint, empty batches, checkpoint and pixel dtypes, wrong paths, the convert CLI's command
line, and config values of the wrong type. Each case once gave a wrong result or an unhelpful
crash."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import dinat_ref.numpy as dn  # noqa: E402
import dinat_ref.torch as dt  # noqa: E402
from dinat_ref import DinatConfig  # noqa: E402
from dinat_ref.hf.weights import load_state_dict, random_state_dict, save_state_dict  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CFG = DinatConfig(embed_dim=16, depths=[1, 2], num_heads=[2, 4], kernel_size=3, dilations=[[2], [1, 3]],
                  num_labels=4, drop_path_rate=0.0, out_features=["stem", "stage2"])


def _np_clf(cfg=CFG, dtype=np.float64):
    return dn.DinatForImageClassification(cfg, random_state_dict(cfg, seed=0), dtype=dtype)


def _x(b=3, seed=0):
    return np.random.default_rng(seed).normal(size=(b, 3, 32, 32))


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


# ----------------------------------------------------------------------------------------
# Labels: -100 ignored, anything else out of range is an error
# ----------------------------------------------------------------------------------------

def test_minus_100_is_ignored_and_the_mean_is_over_the_rest_in_both_models():
    np_model = _np_clf()
    th_model = dt.DinatForImageClassification.from_pretrained(None, config=CFG,
                                                              state_dict=random_state_dict(CFG, seed=0),
                                                              dtype=torch.float64)
    x, labels = _x(), np.array([2, -100, 1])
    out = np_model(x, labels=labels)
    logp = _log_softmax(out.logits)
    expected = -(logp[0, 2] + logp[2, 1]) / 2  # two labelled samples
    assert float(out.loss) == pytest.approx(expected, rel=1e-12)
    with torch.no_grad():
        th = th_model(torch.from_numpy(x), labels=torch.from_numpy(labels))
    assert float(th.loss) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("bad", [-1, 4, 7])
def test_out_of_range_labels_raise_naming_label_and_num_labels(bad):
    labels = np.array([0, bad, 1])
    with pytest.raises(ValueError, match=rf"labels contain {bad}.*num_labels=4"):
        _np_clf()(_x(), labels=labels)
    with pytest.raises(ValueError, match=rf"labels contain {bad}.*num_labels=4"):
        dt.DinatForImageClassification(CFG)(torch.from_numpy(_x()), labels=torch.from_numpy(labels))


def test_float_labels_for_single_label_classification_are_refused_not_truncated():
    cfg = dataclasses.replace(CFG, problem_type="single_label_classification")
    with pytest.raises(TypeError, match="needs integer class indices"):
        _np_clf(cfg)(_x(), labels=np.array([0.0, 1.7, 2.0]))
    with pytest.raises(TypeError, match="needs integer class indices"):
        dt.DinatForImageClassification(cfg)(torch.from_numpy(_x()), labels=torch.tensor([0.0, 1.7, 2.0]))


# ----------------------------------------------------------------------------------------
# Saves: all or nothing
# ----------------------------------------------------------------------------------------

def _snapshot(directory) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))}


def _break_weights_writer(monkeypatch):
    """Make every safetensors write fail halfway: a partial file, then an error."""
    import safetensors.numpy
    import safetensors.torch

    def broken(_tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", broken)
    monkeypatch.setattr(safetensors.torch, "save_file", broken)


@pytest.mark.parametrize("framework", ["numpy", "torch"])
def test_a_failed_save_leaves_the_previous_checkpoint_exactly_as_it_was(tmp_path, monkeypatch, framework):
    renamed = dataclasses.replace(CFG, id2label={i: f"class {i}" for i in range(4)})
    if framework == "numpy":
        _np_clf(CFG).save_pretrained(tmp_path)
        new = _np_clf(renamed)
    else:
        dt.DinatForImageClassification(CFG).save_pretrained(tmp_path)
        new = dt.DinatForImageClassification(renamed)
    before = _snapshot(tmp_path)
    assert sorted(before) == ["config.json", "model.safetensors"]
    _break_weights_writer(monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        new.save_pretrained(tmp_path)
    assert _snapshot(tmp_path) == before  # same files, same bytes, no temporary files left


def test_a_rename_failing_midway_puts_the_first_file_back(tmp_path, monkeypatch):
    """The weights are renamed into place, then the config's rename fails: both are restored."""
    import dinat_ref.hf.atomic as atomic

    (tmp_path / "model.safetensors").write_bytes(b"old weights")
    (tmp_path / "config.json").write_text("old config")
    before = _snapshot(tmp_path)
    real_replace, failed = os.replace, []

    def replace(src, dst):  # the new config's rename fails, once
        if str(dst).endswith("config.json") and ".tmp" in str(src) and not failed:
            failed.append(src)
            raise OSError("rename failed")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(OSError, match="rename failed"):
        with atomic.atomic_files(tmp_path) as stage:
            for name, text in (("model.safetensors", "new weights"), ("config.json", "new config")):
                with open(stage(name), "w") as fh:
                    fh.write(text)
    assert _snapshot(tmp_path) == before


def test_a_failed_convert_leaves_the_output_directory_as_it_was(tmp_path, monkeypatch, capsys):
    from test_weights import _shi_labs_checkpoint  # a small SHI-Labs-layout classifier

    from dinat_ref.cli import main
    from dinat_ref.hf.weights import infer_shi_labs_config

    shi = {k: v.astype(np.float32) for k, v in _shi_labs_checkpoint(np.random.default_rng(0)).items()}
    cfg = infer_shi_labs_config(shi, dilations=[[1, 2], [1, 1]])
    save_state_dict(shi, tmp_path / "ckpt.safetensors")
    cfg.to_json_file(tmp_path / "arch.json")
    out = tmp_path / "out"
    args = ["convert", str(tmp_path / "ckpt.safetensors"), str(out), "--config", str(tmp_path / "arch.json")]
    assert main(args) == 0
    before = _snapshot(out)
    _break_weights_writer(monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        main([*args, "--force"])
    assert _snapshot(out) == before


# ----------------------------------------------------------------------------------------
# Sharded checkpoints
# ----------------------------------------------------------------------------------------

def test_shards_outside_the_checkpoint_directory_are_refused(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    sd = random_state_dict(CFG, seed=0)
    save_state_dict(sd, tmp_path / "elsewhere.safetensors")  # a file outside the checkpoint
    index = {"metadata": {}, "weight_map": {k: "../elsewhere.safetensors" for k in sd}}
    (ckpt / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="outside the checkpoint directory"):
        load_state_dict(ckpt)
    index["weight_map"] = {k: str(tmp_path / "elsewhere.safetensors") for k in sd}  # absolute
    (ckpt / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="outside the checkpoint directory"):
        load_state_dict(ckpt, "torch")


def test_an_index_without_weight_map_says_so(tmp_path):
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}}))
    with pytest.raises(ValueError, match="weight_map"):
        load_state_dict(tmp_path)


# ----------------------------------------------------------------------------------------
# Empty batches
# ----------------------------------------------------------------------------------------

def _shapes(out):
    return {k: (tuple(v.shape) if hasattr(v, "shape") else [tuple(t.shape) for t in v])
            for k, v in out.items()}


def _batch_to_zero(shapes):
    return {k: ((0, *v[1:]) if isinstance(v, tuple) else [(0, *s[1:]) for s in v]) for k, v in shapes.items()}


@pytest.mark.parametrize("name, kind", [("DinatForImageClassification", "classification"),
                                        ("DinatModel", "model"), ("DinatBackbone", "backbone")])
def test_an_empty_batch_gives_empty_outputs_of_the_right_shape(name, kind):
    kw = dict(output_hidden_states=True, output_attentions=True)
    np_model = getattr(dn, name)(CFG, random_state_dict(CFG, kind, seed=0))
    one = _shapes(np_model(_x(1).astype(np.float32), **kw))
    assert _shapes(np_model(np.zeros((0, 3, 32, 32), np.float32), **kw)) == _batch_to_zero(one)
    th_model = getattr(dt, name)(CFG).eval()
    with torch.no_grad():
        assert _shapes(th_model(torch.zeros(0, 3, 32, 32), **kw)) == _batch_to_zero(one)


# ----------------------------------------------------------------------------------------
# Dtypes of checkpoints and pixels
# ----------------------------------------------------------------------------------------

def test_numpy_loader_reads_bfloat16_safetensors_as_float32(tmp_path):
    from safetensors.torch import save_file

    sd = {k: torch.from_numpy(v).to(torch.bfloat16) for k, v in random_state_dict(CFG, seed=3).items()}
    save_file(sd, str(tmp_path / "model.safetensors"))
    CFG.save_pretrained(tmp_path)
    loaded = load_state_dict(tmp_path, "numpy")
    for k, v in sd.items():
        assert loaded[k].dtype == np.float32
        np.testing.assert_array_equal(loaded[k], v.float().numpy())  # exact: bf16 -> f32 is lossless
    model = dn.DinatForImageClassification.from_pretrained(tmp_path)
    assert model(_x(1)).logits.shape == (1, 4)


def test_torch_model_casts_float_pixels_and_refuses_integers_and_numpy():
    model = dt.DinatForImageClassification(CFG).eval()
    x = torch.from_numpy(_x(2))  # float64 into a float32 model
    with torch.no_grad():
        out = model(x).logits
        torch.testing.assert_close(out, model(x.float()).logits)
        assert out.dtype == torch.float32
        assert model.double()(x.float()).logits.dtype == torch.float64
    with pytest.raises(TypeError, match="dtype torch.uint8.*floats"):
        model((x * 100).to(torch.uint8))
    with pytest.raises(TypeError, match="pixel_values is a ndarray.*float torch tensor.*from_numpy"):
        model(_x(2))


def test_numpy_model_refuses_torch_tensors_with_the_way_out():
    with pytest.raises(TypeError, match=r"torch tensor.*\.numpy\(\)"):
        _np_clf()(torch.zeros(1, 3, 32, 32))


# ----------------------------------------------------------------------------------------
# Paths
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("framework", ["numpy", "torch"])
def test_from_pretrained_given_a_file_asks_for_the_directory(tmp_path, framework):
    dt.DinatForImageClassification(CFG).save_pretrained(tmp_path)
    module = dn if framework == "numpy" else dt
    for name in ("model.safetensors", "config.json"):
        with pytest.raises(ValueError, match="is a file; pass the model directory"):
            module.DinatForImageClassification.from_pretrained(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="no directory"):
        module.DinatForImageClassification.from_pretrained(tmp_path / "nope")


# ----------------------------------------------------------------------------------------
# dinat-ref convert: the command line is checked first
# ----------------------------------------------------------------------------------------

@pytest.fixture
def converter_must_not_run(monkeypatch):
    import dinat_ref.hf.weights

    def boom(*a, **k):
        raise AssertionError("conversion work started before the command line was checked")

    monkeypatch.setattr(dinat_ref.hf.weights, "load_shi_labs_checkpoint", boom)


@pytest.mark.parametrize("case, words", [
    ("missing-checkpoint", "does not exist"),
    ("output-is-a-file", "is a file"),
    ("unknown-preset", "unknown preset 'huge'"),
    ("missing-config", "--config"),
])
def test_convert_command_line_errors_exit_2_with_one_line(tmp_path, capsys, converter_must_not_run,
                                                          case, words):
    from dinat_ref.cli import main

    ckpt = tmp_path / "ckpt.safetensors"
    save_state_dict({"head.weight": np.zeros((2, 2), np.float32)}, ckpt)
    (tmp_path / "a-file").write_text("x")
    args = {
        "missing-checkpoint": [str(tmp_path / "nope.pth"), str(tmp_path / "out")],
        "output-is-a-file": [str(ckpt), str(tmp_path / "a-file")],
        "unknown-preset": [str(ckpt), str(tmp_path / "out"), "--preset", "huge"],
        "missing-config": [str(ckpt), str(tmp_path / "out"), "--config", str(tmp_path / "nope.json")],
    }[case]
    assert main(["convert", *args]) == 2
    err = capsys.readouterr().err
    assert words in err and err.startswith("dinat-ref convert: ") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------
# DinatConfig: types and ranges
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, words", [
    (dict(qkv_bias=1), "qkv_bias=1 must be a bool"),
    (dict(output_hidden_states="yes"), "output_hidden_states='yes' must be a bool"),
    (dict(return_dict=None), "return_dict=None must be a bool"),
    (dict(mlp_ratio=float("nan")), "mlp_ratio=nan must be a finite number"),
    (dict(mlp_ratio=True), "mlp_ratio=True"),
    (dict(layer_norm_eps=float("inf")), "layer_norm_eps=inf must be a finite number > 0"),
    (dict(layer_norm_eps=0.0), "layer_norm_eps=0.0"),
    (dict(layer_scale_init_value=float("nan")), "layer_scale_init_value=nan"),
    (dict(initializer_range=-0.02), "initializer_range=-0.02 must be a finite number >= 0"),
    (dict(hidden_dropout_prob="0.1"), "hidden_dropout_prob='0.1' must be a finite number in [0, 1)"),
    (dict(attention_probs_dropout_prob=float("nan")), "attention_probs_dropout_prob=nan"),
    (dict(id2label={"x": "cat", 1: "dog"}), "id2label key 'x' is not an integer"),
    (dict(problem_type="ranking"), "problem_type='ranking'"),
    (dict(num_labels=1, problem_type="single_label_classification"), "needs num_labels > 1"),
])
def test_config_type_and_range_checks_name_the_field(kwargs, words):
    with pytest.raises(ValueError) as e:
        DinatConfig(**kwargs)
    assert words in str(e.value)


def test_config_json_that_is_not_an_object_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("[1, 2, 3]")
    with pytest.raises(ValueError, match="must be a JSON object"):
        DinatConfig.from_pretrained(tmp_path)


def test_backend_is_checked_when_the_model_is_built():
    with pytest.raises(ValueError, match="backend='nope' is not one of 'auto'"):
        dt.DinatModel(CFG, backend="nope")


def test_a_config_broken_after_construction_is_refused_when_the_model_is_built():
    cfg = DinatConfig(**CFG.to_dict())
    cfg.depths = [1, 2, 3]  # dilations and num_heads now describe two stages
    with pytest.raises(ValueError, match="cannot build this config: DinatConfig: num_heads"):
        dt.DinatModel(cfg)
