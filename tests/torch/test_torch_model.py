"""The torch DiNAT: Hugging Face state_dict names, parameter counts, training behaviour
(gradients reach every parameter, SGD lowers the loss, dropout / drop path only in training),
dtypes, backends, save/load round trips."""

from __future__ import annotations

import dataclasses

import pytest

torch = pytest.importorskip("torch")

from dinat_ref import PRESETS, DinatConfig  # noqa: E402
from dinat_ref.hf.weights import StateDictError, count_parameters, expected_shapes  # noqa: E402
from dinat_ref.torch import DinatBackbone, DinatForImageClassification, DinatModel  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CFG = DinatConfig(embed_dim=16, depths=[2, 1], num_heads=[2, 4], kernel_size=3, dilations=[[1, 2], [1]],
                  mlp_ratio=2.0, layer_scale_init_value=0.5, num_labels=3, drop_path_rate=0.0,
                  out_features=["stage1", "stage2"])

# Hugging Face names of one layer, typed from transformers' modeling_dinat.py
HF_LAYER_KEYS = {
    "layernorm_before.weight", "layernorm_before.bias", "attention.self.rpb",
    "attention.self.query.weight", "attention.self.query.bias", "attention.self.key.weight",
    "attention.self.key.bias", "attention.self.value.weight", "attention.self.value.bias",
    "attention.output.dense.weight", "attention.output.dense.bias", "layernorm_after.weight",
    "layernorm_after.bias", "intermediate.dense.weight", "intermediate.dense.bias",
    "output.dense.weight", "output.dense.bias", "layer_scale_parameters",
}


@pytest.mark.parametrize("cls, kind", [(DinatForImageClassification, "classification"),
                                       (DinatModel, "model"), (DinatBackbone, "backbone")])
def test_state_dict_has_hugging_face_names_and_shapes(cls, kind):
    sd = cls(CFG).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected_shapes(CFG, kind)
    prefix = "dinat." if kind == "classification" else ""
    layer = f"{prefix}encoder.levels.0.layers.1."
    assert {k[len(layer):] for k in sd if k.startswith(layer)} == HF_LAYER_KEYS
    assert tuple(sd[layer + "attention.self.rpb"].shape) == (2, 5, 5)
    assert tuple(sd[layer + "layer_scale_parameters"].shape) == (2, 16)
    assert f"{prefix}encoder.levels.0.downsample.reduction.weight" in sd
    assert f"{prefix}encoder.levels.0.downsample.reduction.bias" not in sd
    assert f"{prefix}encoder.levels.1.downsample.norm.weight" not in sd  # last stage: no downsampler
    assert f"{prefix}embeddings.patch_embeddings.projection.1.bias" in sd
    if kind == "backbone":
        assert {k for k in sd if k.startswith("hidden_states_norms.")} == {
            "hidden_states_norms.stage1.weight", "hidden_states_norms.stage1.bias",
            "hidden_states_norms.stage2.weight", "hidden_states_norms.stage2.bias"}
    no_ls = DinatModel(dataclasses.replace(CFG, layer_scale_init_value=0.0)).state_dict()
    assert not any("layer_scale" in k for k in no_ls)


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_parameter_counts_of_the_built_module(name):
    cfg = DinatConfig.from_preset(name)
    with torch.device("meta"):  # shapes only, nothing allocated
        model = DinatForImageClassification(cfg)
    assert sum(p.numel() for p in model.parameters()) == count_parameters(cfg)


def test_init_follows_hugging_face():
    m = DinatForImageClassification(CFG)
    layer = m.dinat.encoder.levels[0].layers[0]
    assert torch.all(layer.attention.self.rpb == 0)
    assert torch.all(layer.layer_scale_parameters == 0.5)
    assert torch.all(layer.layernorm_before.weight == 1) and torch.all(layer.attention.self.query.bias == 0)
    assert layer.attention.self.query.weight.std().item() == pytest.approx(0.02, rel=0.3)


def _randomize(model: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.1)


def test_gradients_reach_every_parameter():
    model = DinatForImageClassification(CFG).double().train()
    _randomize(model)  # rpb and layer scale away from their init
    x = torch.randn(2, 3, 40, 24, dtype=torch.float64)  # padding path in stage 2 (5x3 < 6)
    out = model(x, labels=torch.tensor([0, 2]))
    out.loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_gradients_match_finite_differences_on_rpb():
    model = DinatForImageClassification(CFG).double().eval()
    _randomize(model, 1)
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    rpb = model.dinat.encoder.levels[0].layers[1].attention.self.rpb
    model(x).logits.sum().backward()
    eps, idx = 1e-6, (1, 2, 3)
    with torch.no_grad():
        rpb[idx] += eps
        up = model(x).logits.sum()
        rpb[idx] -= 2 * eps
        down = model(x).logits.sum()
        rpb[idx] += eps
    assert rpb.grad[idx].item() == pytest.approx(((up - down) / (2 * eps)).item(), rel=1e-5, abs=1e-8)


def test_sgd_steps_reduce_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = DinatForImageClassification(CFG).train()
    x, y = torch.randn(6, 3, 24, 24), torch.tensor([0, 1, 2, 0, 1, 2])
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(6):
        loss = model(x, labels=y).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_dropout_and_drop_path_only_in_training():
    cfg = dataclasses.replace(CFG, drop_path_rate=0.5, hidden_dropout_prob=0.2,
                              attention_probs_dropout_prob=0.2, out_features=None, out_indices=None)
    model = DinatForImageClassification(cfg)
    _randomize(model)
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        a, b = model(x).logits, model(x).logits
        plain = dataclasses.replace(cfg, drop_path_rate=0.0, hidden_dropout_prob=0.0,
                                    attention_probs_dropout_prob=0.0)
        ref = DinatForImageClassification(plain)
        ref.load_state_dict(model.state_dict())
        c = ref.eval()(x).logits
    assert torch.equal(a, b) and torch.allclose(a, c, atol=1e-6)
    model.train()
    torch.manual_seed(1)
    with torch.no_grad():
        d = model(x).logits
    assert not torch.allclose(a, d, atol=1e-3)


def test_attention_maps_from_torch(tmp_path):
    model = DinatForImageClassification(CFG).eval()
    _randomize(model)
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        out = model(x, output_attentions=True)
        plain = model(x).logits
    assert [tuple(a.shape) for a in out.attentions] == [(1, 8, 12, 2, 9), (1, 8, 12, 2, 9), (1, 4, 6, 4, 9)]
    assert torch.allclose(out.attentions[0].sum(-1), torch.ones(1, 8, 12, 2))
    assert torch.allclose(out.logits, plain, atol=1e-5)


def test_save_and_from_pretrained_round_trip(tmp_path):
    model = DinatBackbone(CFG)
    _randomize(model)
    model.save_pretrained(tmp_path)
    again = DinatBackbone.from_pretrained(tmp_path)
    assert again.config == model.config and not again.training
    for (k, v), (k2, v2) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        maps = again(x).feature_maps
    assert [tuple(m.shape) for m in maps] == [(1, 16, 8, 8), (1, 32, 4, 4)] and again.channels == [16, 32]
    assert again.encoder.levels[0].layers[0].attention.self.rpb.dtype == torch.float32
    f64 = DinatBackbone.from_pretrained(tmp_path, dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in f64.parameters())


def test_loading_a_mismatched_directory_fails_cleanly(tmp_path):
    DinatForImageClassification(CFG).save_pretrained(tmp_path)
    other = dataclasses.replace(CFG, num_labels=4)
    with pytest.raises(StateDictError, match=r"classifier.weight: checkpoint \(3, 32\) vs model \(4, 32\)"):
        DinatForImageClassification.from_pretrained(tmp_path, config=other)


def test_bad_inputs_are_named():
    model = DinatModel(CFG)
    with pytest.raises(ValueError, match="num_channels=3"):
        model(torch.randn(1, 4, 32, 32))
    with pytest.raises(TypeError, match="DinatConfig"):
        DinatModel({"embed_dim": 16})
    with pytest.raises(ValueError, match="backend='nope'"):
        DinatModel(CFG, backend="nope")(torch.randn(1, 3, 32, 32))


def test_natten_backend_refuses_rpb_with_a_clear_error():
    model = DinatModel(CFG, backend="natten")
    with pytest.raises(ValueError, match="backend='natten'"):
        model(torch.randn(1, 3, 32, 32))
    with torch.no_grad():
        out = DinatModel(CFG, backend="torch")(torch.randn(1, 3, 32, 32))
    assert torch.isfinite(out.last_hidden_state).all()


def test_no_classifier_when_num_labels_is_zero():
    import numpy as np

    import dinat_ref.numpy as dn
    from dinat_ref.hf.weights import random_state_dict

    cfg = dataclasses.replace(CFG, num_labels=0)
    model = DinatForImageClassification(cfg).double().eval()
    assert not any(k.startswith("classifier") for k in model.state_dict())
    sd = random_state_dict(cfg, seed=2, dtype=np.float64)
    model.load_checkpoint(sd)
    x = np.random.default_rng(0).normal(size=(1, 3, 32, 32))
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).logits
    assert tuple(logits.shape) == (1, 32)  # the pooled features
    ref = dn.DinatForImageClassification(cfg, sd, dtype=np.float64)(x).logits
    np.testing.assert_allclose(logits.numpy(), ref, rtol=1e-9, atol=1e-9)
