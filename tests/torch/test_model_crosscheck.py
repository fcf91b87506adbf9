"""The NumPy model and the torch model on identical weights give the same numbers.

Random weights with every part switched on (non-zero RPB, biases, layer scale) are saved once
per config in Hugging Face layout; each path loads that directory on its own. Compared:
logits, every hidden state, attention maps (classifier), last_hidden_state and pooler_output
(DinatModel), and backbone feature maps; float64 to 1e-9, float32 to 1e-4.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import dinat_ref.numpy as dn  # noqa: E402
import dinat_ref.torch as dt  # noqa: E402
from dinat_ref import DinatConfig  # noqa: E402
from dinat_ref.hf.weights import random_state_dict, save_state_dict  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOL = {np.float64: 1e-9, np.float32: 1e-4}
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}

# Two-to-three stages, dilations up to 4, kernel 5: small but with every code path.
TINY = DinatConfig(embed_dim=16, depths=[2, 2, 1], num_heads=[2, 4, 4], kernel_size=5,
                   dilations=[[1, 3], [2, 1], [1]], mlp_ratio=2.0, layer_scale_init_value=0.1,
                   num_labels=7, drop_path_rate=0.0, out_features=["stem", "stage1", "stage2", "stage3"])


def _save(directory, config: DinatConfig, kind: str, seed: int):
    directory.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(directory)
    save_state_dict(random_state_dict(config, kind, seed=seed, dtype=np.float32),
                    directory / "model.safetensors")
    return directory


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Checkpoint directories, written once: tiny classifier, tiny backbone, DiNAT-mini classifier."""
    root = tmp_path_factory.mktemp("dinat")
    mini = DinatConfig.from_preset("mini", layer_scale_init_value=0.1)  # layer scale switched on
    return {
        "tiny": _save(root / "tiny", TINY, "classification", seed=0),
        "tiny-backbone": _save(root / "tiny-backbone", TINY, "backbone", seed=1),
        "mini": _save(root / "mini", mini, "classification", seed=2),
    }


def _close(a, b, dtype, what):
    tol = TOL[dtype]
    np.testing.assert_allclose(np.asarray(a), b.detach().numpy(), rtol=tol, atol=tol, err_msg=what)


def _run_both(directory, cls_name, x, dtype, **kw):
    np_model = getattr(dn, cls_name).from_pretrained(directory, dtype=dtype)
    th_model = getattr(dt, cls_name).from_pretrained(directory, dtype=TORCH_DTYPE[dtype])
    a = np_model(x.astype(dtype), **kw)
    with torch.no_grad():
        b = th_model(torch.from_numpy(x.astype(dtype)), **kw)
    return a, b


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("hw", [(64, 64), (64, 96), (24, 36)],
                         ids=["64x64", "64x96-nonsquare", "24x36-padded"])
def test_classifier_agrees(saved, dtype, hw):
    x = np.random.default_rng(1).normal(size=(2, 3, *hw))
    a, b = _run_both(saved["tiny"], "DinatForImageClassification", x, dtype,
                     output_hidden_states=True, output_attentions=True)
    _close(a.logits, b.logits, dtype, "logits")
    assert len(a.hidden_states) == len(b.hidden_states) == 1 + TINY.num_layers
    for i, (h1, h2) in enumerate(zip(a.hidden_states, b.hidden_states, strict=True)):
        _close(h1, h2, dtype, f"hidden_states[{i}]")
    for i, (h1, h2) in enumerate(zip(a.reshaped_hidden_states, b.reshaped_hidden_states, strict=True)):
        _close(h1, h2, dtype, f"reshaped_hidden_states[{i}]")
    assert len(a.attentions) == len(b.attentions) == sum(TINY.depths)
    for i, (p1, p2) in enumerate(zip(a.attentions, b.attentions, strict=True)):
        _close(p1, p2, dtype, f"attentions[{i}]")
    if hw == (24, 36):  # tokens 6x9: the dilation-3 window (15) is larger, so this input was padded
        assert a.attentions[1].shape[1:3] == (15, 15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_backbone_agrees(saved, dtype):
    x = np.random.default_rng(2).normal(size=(2, 3, 64, 96))
    a, b = _run_both(saved["tiny-backbone"], "DinatBackbone", x, dtype, output_hidden_states=True)
    assert [m.shape for m in a.feature_maps] == [(2, 16, 16, 24), (2, 16, 16, 24), (2, 32, 8, 12),
                                                 (2, 64, 4, 6)]
    for i, (m1, m2) in enumerate(zip(a.feature_maps, b.feature_maps, strict=True)):
        _close(m1, m2, dtype, f"feature_maps[{i}]")
    for i, (h1, h2) in enumerate(zip(a.hidden_states, b.hidden_states, strict=True)):
        _close(h1, h2, dtype, f"hidden_states[{i}]")


def test_model_agrees_and_matches_the_classifier_trunk(saved):
    x = np.random.default_rng(3).normal(size=(1, 3, 64, 64))
    a, b = _run_both(saved["tiny"], "DinatModel", x, np.float64, output_hidden_states=True)
    _close(a.last_hidden_state, b.last_hidden_state, np.float64, "last_hidden_state")
    _close(a.pooler_output, b.pooler_output, np.float64, "pooler_output")
    clf = dn.DinatForImageClassification.from_pretrained(saved["tiny"], dtype=np.float64)
    w, bias = clf.params["classifier.weight"], clf.params["classifier.bias"]
    np.testing.assert_allclose(a.pooler_output @ w.T + bias, clf(x).logits, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dinat_mini_at_224_agrees(saved, dtype):
    x = np.random.default_rng(4).normal(size=(1, 3, 224, 224))
    a, b = _run_both(saved["mini"], "DinatForImageClassification", x, dtype, output_hidden_states=True)
    assert a.logits.shape == (1, 1000) and a.hidden_states[-1].shape == (1, 7, 7, 512)
    _close(a.logits, b.logits, dtype, "logits")
    for i, (h1, h2) in enumerate(zip(a.hidden_states, b.hidden_states, strict=True)):
        _close(h1, h2, dtype, f"hidden_states[{i}]")


def test_weights_differ_means_outputs_differ(saved):
    """The comparison can fail: perturb one RPB entry on the torch side only."""
    x = np.random.default_rng(5).normal(size=(1, 3, 64, 64))
    a = dn.DinatForImageClassification.from_pretrained(saved["tiny"], dtype=np.float64)(x)
    th = dt.DinatForImageClassification.from_pretrained(saved["tiny"], dtype=torch.float64)
    with torch.no_grad():
        th.dinat.encoder.levels[1].layers[0].attention.self.rpb[1, 2, 3] += 1e-3
        b = th(torch.from_numpy(x))
    with pytest.raises(AssertionError):
        _close(a.logits, b.logits, np.float64, "logits")


def test_torch_backends_agree_with_numpy(saved):
    """Explicit backend choice on the torch side: 'torch' (tiled) and the default 'auto'."""
    x = np.random.default_rng(6).normal(size=(1, 3, 64, 64))
    ref = dn.DinatForImageClassification.from_pretrained(saved["tiny"], dtype=np.float64)(x).logits
    for backend in ("torch", "auto"):
        m = dt.DinatForImageClassification.from_pretrained(saved["tiny"], dtype=torch.float64,
                                                           backend=backend)
        with torch.no_grad():
            _close(ref, m(torch.from_numpy(x)).logits, np.float64, backend)


def test_pytorch_bin_directory_loads_in_both(saved, tmp_path):
    """The same weights as pytorch_model.bin (weights_only) give the same logits."""
    cfg = DinatConfig.from_pretrained(saved["tiny"])
    sd = dn.DinatForImageClassification.from_pretrained(saved["tiny"]).state_dict()
    cfg.save_pretrained(tmp_path)
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, tmp_path / "pytorch_model.bin")
    x = np.random.default_rng(7).normal(size=(1, 3, 32, 32))
    a, b = _run_both(tmp_path, "DinatForImageClassification", x, np.float64)
    _close(a.logits, b.logits, np.float64, "logits")
    ref = dn.DinatForImageClassification.from_pretrained(saved["tiny"], dtype=np.float64)(x).logits
    np.testing.assert_array_equal(a.logits, ref)

