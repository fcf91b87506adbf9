"""Hugging Face ``transformers``' DiNAT model tests, ported to our classes.

What ``tests/models/dinat/test_modeling_dinat.py`` and the backbone / common-model mixins of
``transformers`` check, written again for ``dinat_ref.torch`` (their model tester's sizes and
config, batch 2 instead of 13 to stay fast on a CPU). Where ``transformers`` is installed and
importable it is the reference itself: its ``DinatConfig`` (round trips, label maps,
``out_features`` alignment), its classification loss function (``problem_type`` semantics)
and its ``ModelOutput`` (indexing, keys, tuples).

One documented difference: attentions are one map per layer in neighborhood layout, heads last.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

import dinat_ref.numpy as dn  # noqa: E402
from dinat_ref import DinatConfig  # noqa: E402
from dinat_ref.hf.weights import StateDictError, random_state_dict  # noqa: E402
from dinat_ref.torch import DinatBackbone, DinatForImageClassification, DinatModel  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ALL = (DinatModel, DinatForImageClassification, DinatBackbone)
B, IMAGE, NUM_LABELS = 2, 64, 10


def get_config(**overrides) -> DinatConfig:
    """transformers' DinatModelTester.get_config, image_size and patch_norm included."""
    kwargs = dict(num_labels=NUM_LABELS, image_size=IMAGE, patch_size=4, num_channels=3, embed_dim=16,
                  depths=[1, 2, 1], num_heads=[2, 4, 8], kernel_size=3, dilations=[[3], [1, 2], [1]],
                  mlp_ratio=2.0, qkv_bias=True, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                  drop_path_rate=0.1, hidden_act="gelu", patch_norm=True, layer_norm_eps=1e-5,
                  initializer_range=0.02, out_features=["stage1", "stage2"], out_indices=[1, 2])
    kwargs.update(overrides)
    return DinatConfig(**kwargs)


def pixels(batch: int = B, channels: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, channels, IMAGE, IMAGE, generator=torch.Generator().manual_seed(seed))


def hf():
    """The transformers pieces used as reference, or a skip saying why they are unavailable."""
    try:
        import transformers
        from transformers.loss.loss_utils import ForSequenceClassificationLoss
        from transformers.utils import ModelOutput
    except Exception as e:  # noqa: BLE001 - missing, or failing to import in this environment
        pytest.skip(f"transformers is not importable here: {type(e).__name__}: {e}")
    if not hasattr(transformers, "DinatConfig"):
        pytest.skip(f"transformers {transformers.__version__} has no DinatConfig")
    return transformers, ForSequenceClassificationLoss, ModelOutput


# ----------------------------------------------------------------------------------------
# DinatModelTest (test_modeling_dinat.py)
# ----------------------------------------------------------------------------------------

def test_config_common_properties_and_round_trips(tmp_path):
    config = DinatConfig(embed_dim=37, depths=[1], num_heads=[1], dilations=[[1]])
    for name in ("patch_size", "num_channels"):
        assert hasattr(config, name)
    assert json.loads(config.to_json_string())["embed_dim"] == 37
    config.to_json_file(tmp_path / "c.json")
    assert DinatConfig.from_json_file(tmp_path / "c.json").to_dict() == config.to_dict()
    config.save_pretrained(tmp_path / "sub")
    assert DinatConfig.from_pretrained(tmp_path / "sub").to_dict() == config.to_dict()
    five = DinatConfig(num_labels=5)
    assert len(five.id2label) == 5 and len(five.label2id) == 5
    five.num_labels = 3
    assert len(five.id2label) == 3 and len(five.label2id) == 3
    assert DinatConfig() is not None


def test_config_accepts_the_common_transformers_kwargs():
    common = dict(return_dict=False, output_hidden_states=True, output_attentions=True,
                  problem_type="regression", id2label={0: "a", 1: "b"}, label2id={"a": 0, "b": 1},
                  image_size=64, patch_norm=True, torchscript=False, chunk_size_feed_forward=0)
    config = DinatConfig(**common)
    for key, value in common.items():
        assert getattr(config, key) == value, key
    again = DinatConfig.from_dict(json.loads(config.to_json_string()))
    assert again == config and again.image_size == 64 and again.patch_norm is True
    assert config.use_return_dict is False
    default = DinatConfig(num_labels=3)
    assert default.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    assert default.label2id == {"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2}


def test_model():
    model = DinatModel(get_config()).eval()
    with torch.no_grad():
        out = model(pixels())
    side = (IMAGE // 4) // 2 ** (3 - 1)
    assert tuple(out.last_hidden_state.shape) == (B, side, side, 16 * 2 ** 2)


def test_for_image_classification_and_greyscale():
    config = get_config()
    with torch.no_grad():
        assert DinatForImageClassification(config).eval()(pixels()).logits.shape == (B, NUM_LABELS)
        config.num_channels = 1
        model = DinatForImageClassification(config).eval()
        assert model(pixels(channels=1)).logits.shape == (B, NUM_LABELS)


def test_backbone():
    config = get_config()
    model = DinatBackbone(config).eval()
    with torch.no_grad():
        out = model(pixels())
    assert len(out.feature_maps) == len(config.out_features) == len(model.channels) == 2
    assert list(out.feature_maps[0].shape) == [B, model.channels[0], 16, 16]
    config.out_features = None
    model = DinatBackbone(config).eval()
    with torch.no_grad():
        out = model(pixels())
    assert len(out.feature_maps) == 1 and len(model.channels) == 1
    assert list(out.feature_maps[0].shape) == [B, model.channels[-1], 4, 4]


def test_model_get_set_embeddings():
    for cls in ALL:
        model = cls(get_config())
        assert isinstance(model.get_input_embeddings(), nn.Module)
        x = model.get_output_embeddings()
        assert x is None or isinstance(x, nn.Linear)


def _check_hidden_states(model, inputs, **kw):
    with torch.no_grad():
        out = model.eval()(inputs, **kw)
    assert len(out.hidden_states) == 3 + 1
    assert list(out.hidden_states[0].shape[-3:]) == [IMAGE // 4, IMAGE // 4, 16]
    if not isinstance(model, DinatBackbone):
        assert len(out.reshaped_hidden_states) == 3 + 1
        assert list(out.reshaped_hidden_states[0].permute(0, 2, 3, 1).shape[-3:]) == [16, 16, 16]


def test_hidden_states_output_by_argument_and_by_config():
    for cls in ALL:
        config = get_config()
        _check_hidden_states(cls(config), pixels(), output_hidden_states=True)
        config.output_hidden_states = True
        _check_hidden_states(cls(config), pixels())
        with torch.no_grad():  # the argument still wins over the config
            assert cls(config).eval()(pixels(), output_hidden_states=False).hidden_states is None


def test_initialization_with_a_zero_init_config():
    """transformers' _config_zero_init: every *_range / layer_scale set to 1e-10."""
    config = get_config(layer_scale_init_value=0.5)
    for key in ("initializer_range", "layer_scale_init_value"):
        setattr(config, key, 1e-10)
    for cls in ALL:
        for name, param in cls(config).named_parameters():
            if "embeddings" not in name and param.requires_grad:
                assert round(param.data.mean().item() * 1e9) / 1e9 in (0.0, 1.0), name


# ----------------------------------------------------------------------------------------
# ModelTesterMixin, as it applies
# ----------------------------------------------------------------------------------------

def test_forward_signature_and_main_input_name():
    for cls in ALL:
        names = list(inspect.signature(cls(get_config()).forward).parameters)
        assert names[0] == "pixel_values" == cls.main_input_name
    config = get_config()
    assert list(inspect.signature(DinatBackbone(config).forward).parameters) == [
        "pixel_values", "output_hidden_states", "output_attentions", "return_dict"]
    assert list(inspect.signature(DinatForImageClassification(config).forward).parameters) == [
        "pixel_values", "labels", "output_attentions", "output_hidden_states", "return_dict"]
    assert list(inspect.signature(DinatModel(config).forward).parameters) == [
        "pixel_values", "output_attentions", "output_hidden_states", "return_dict"]


def test_save_load_and_determinism(tmp_path):
    for cls in ALL:
        model = cls(get_config()).eval()
        with torch.no_grad():
            first, second = model(pixels())[0], model(pixels())[0]
        first = first[0] if isinstance(first, tuple) else first
        second = second[0] if isinstance(second, tuple) else second
        torch.testing.assert_close(first, second, rtol=0, atol=0)
        model.save_pretrained(tmp_path / cls.__name__)
        again = cls.from_pretrained(tmp_path / cls.__name__)
        with torch.no_grad():
            loaded = again(pixels())[0]
        loaded = loaded[0] if isinstance(loaded, tuple) else loaded
        torch.testing.assert_close(first, loaded, rtol=0, atol=1e-5)


def test_model_outputs_equivalence_of_tuples_and_dicts():
    config = get_config()
    labels = torch.arange(B) % NUM_LABELS
    for cls in ALL:
        model = cls(config).eval()
        kwargs = {"labels": labels} if cls is DinatForImageClassification else {}
        for flags in ({}, {"output_hidden_states": True}, {"output_attentions": True},
                      {"output_hidden_states": True, "output_attentions": True}):
            with torch.no_grad():
                d = model(pixels(), **kwargs, **flags)
                t = model(pixels(), **kwargs, **flags, return_dict=False)
            assert isinstance(t, tuple) and len(t) == len(d.to_tuple())
            for a, b in zip(torch.utils._pytree.tree_leaves(t), torch.utils._pytree.tree_leaves(d.to_tuple()),
                            strict=True):
                torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    config.return_dict = False  # the config's default
    with torch.no_grad():
        assert isinstance(DinatModel(config).eval()(pixels()), tuple)


def test_batching_equivalence():
    model = DinatForImageClassification(get_config()).eval()
    x = pixels(batch=3)
    with torch.no_grad():
        batched = model(x, output_hidden_states=True)
        single = [model(x[i:i + 1], output_hidden_states=True) for i in range(3)]
    torch.testing.assert_close(batched.logits, torch.cat([s.logits for s in single]), rtol=1e-5, atol=1e-5)
    for i, h in enumerate(batched.hidden_states):
        torch.testing.assert_close(h, torch.cat([s.hidden_states[i] for s in single]), rtol=1e-5, atol=1e-5)


def test_training_and_gradient_checkpointing_give_the_same_gradients():
    config = get_config(drop_path_rate=0.0)
    torch.manual_seed(0)
    model = DinatForImageClassification(config).train()
    labels = torch.tensor([1, 7])

    def grads():
        model.zero_grad()
        loss = model(pixels(), labels=labels).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    loss, plain = grads()
    assert torch.isfinite(loss) and not model.is_gradient_checkpointing
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing and model.supports_gradient_checkpointing
    loss2, ckpt = grads()
    torch.testing.assert_close(loss, loss2)
    for name in plain:
        torch.testing.assert_close(plain[name], ckpt[name], rtol=1e-5, atol=1e-6, msg=name)
    model.gradient_checkpointing_disable()
    assert not model.is_gradient_checkpointing


def test_gradient_checkpointing_keeps_drop_path_randomness_consistent():
    """Stochastic depth draws the same masks when the layer is recomputed in backward."""
    config = get_config(drop_path_rate=0.5)
    model = DinatForImageClassification(config).train()
    model.gradient_checkpointing_enable()
    torch.manual_seed(3)
    out = model(pixels(), labels=torch.tensor([0, 1]))
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_retain_grad_hidden_states_and_attentions():
    model = DinatForImageClassification(get_config()).train()
    out = model(pixels(), output_hidden_states=True, output_attentions=True)
    out.hidden_states[0].retain_grad()
    out.attentions[0].retain_grad()
    out[0].flatten()[0].backward(retain_graph=True)
    assert out.hidden_states[0].grad is not None and out.attentions[0].grad is not None


def test_attention_outputs_in_our_documented_layout():
    """transformers skips this test for DiNAT; ours: one map per layer, heads last, sums to 1."""
    config = get_config()
    model = DinatModel(config).eval()
    with torch.no_grad():
        out = model(pixels(), output_attentions=True)
    assert len(out.attentions) == sum(config.depths)
    assert tuple(out.attentions[0].shape) == (B, 16, 16, 2, 9)
    torch.testing.assert_close(out.attentions[1].sum(-1), torch.ones(B, 8, 8, 4))
    config.output_attentions = True
    with torch.no_grad():
        assert len(DinatModel(config).eval()(pixels()).attentions) == sum(config.depths)


def test_model_attributes():
    model = DinatForImageClassification(get_config())
    assert model.num_labels == NUM_LABELS and model.device == torch.device("cpu")
    assert model.dtype == torch.float32 and model.double().dtype == torch.float64
    assert model.num_parameters() == sum(p.numel() for p in model.parameters())
    emb = sum(p.numel() for p in model.get_input_embeddings().parameters())
    assert model.num_parameters(exclude_embeddings=True) == model.num_parameters() - emb
    model.classifier.requires_grad_(False)
    assert model.num_parameters(only_trainable=True) == model.num_parameters() - (16 * 4 + 1) * NUM_LABELS


def test_load_with_mismatched_shapes(tmp_path, caplog):
    DinatForImageClassification(get_config()).save_pretrained(tmp_path)
    with pytest.raises(StateDictError, match="ignore_mismatched_sizes=True"):
        DinatForImageClassification.from_pretrained(tmp_path, num_labels=42)
    with caplog.at_level(logging.WARNING, logger="dinat_ref"):
        model = DinatForImageClassification.from_pretrained(tmp_path, num_labels=42,
                                                            ignore_mismatched_sizes=True)
    assert "classifier.weight: checkpoint (10, 64) vs model (42, 64)" in caplog.text
    assert model.config.num_labels == 42 and len(model.config.id2label) == 42
    with torch.no_grad():
        assert model(pixels()).logits.shape == (B, 42)
    assert torch.all(model.classifier.bias == 0)  # re-initialised as transformers does
    # the trunk still came from the checkpoint
    ref = DinatModel.from_pretrained(tmp_path)
    torch.testing.assert_close(model.dinat.layernorm.weight, ref.layernorm.weight)


def test_trunk_only_checkpoint_into_a_classifier_initialises_and_names_the_head(tmp_path, caplog):
    trunk = DinatModel(get_config())
    with torch.no_grad():
        for p in trunk.parameters():
            p.add_(0.01)
    trunk.save_pretrained(tmp_path)
    labels = {0: "cat", 1: "dog", 2: "owl"}
    with caplog.at_level(logging.WARNING, logger="dinat_ref"):
        clf = DinatForImageClassification.from_pretrained(
            tmp_path, num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()})
    assert "newly initialized" in caplog.text and "classifier.weight" in caplog.text
    assert "classifier.bias" in caplog.text
    assert clf.config.id2label == labels and clf.config.label2id["owl"] == 2
    torch.testing.assert_close(clf.dinat.layernorm.weight, trunk.layernorm.weight)
    assert clf.classifier.weight.std().item() == pytest.approx(0.02, rel=0.5)
    _, info = DinatForImageClassification.from_pretrained(tmp_path, num_labels=3, output_loading_info=True)
    assert info["missing_keys"] == ["classifier.weight", "classifier.bias"]
    assert info["unexpected_keys"] == info["mismatched_keys"] == []
    # NumPy: the same rule
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dinat_ref"):
        np_clf = dn.DinatForImageClassification.from_pretrained(tmp_path, num_labels=3)
    assert "classifier.weight" in caplog.text and np_clf.params["classifier.weight"].shape == (3, 64)


def test_a_trunk_key_missing_still_loads_nothing(tmp_path):
    sd = DinatModel(get_config()).state_dict()
    del sd["encoder.levels.0.layers.0.attention.self.rpb"]
    with pytest.raises(StateDictError, match="missing key.*levels.0.layers.0.attention.self.rpb"):
        DinatForImageClassification.from_pretrained(config=get_config(), state_dict=sd)


def test_from_pretrained_with_config_and_state_dict_and_dtype(tmp_path):
    config = get_config()
    sd = random_state_dict(config, seed=1)
    model = DinatForImageClassification.from_pretrained(None, config=config, state_dict=sd,
                                                        torch_dtype=torch.float64)
    assert model.dtype == torch.float64
    np.testing.assert_array_equal(model.classifier.weight.detach().float().numpy(), sd["classifier.weight"])
    assert DinatForImageClassification.from_pretrained(None, config=config, state_dict=sd,
                                                       dtype="bfloat16").dtype == torch.bfloat16
    with pytest.raises(TypeError, match="unexpected keyword.*num_lables"):
        DinatForImageClassification.from_pretrained(None, config=config, state_dict=sd, num_lables=3)


# ----------------------------------------------------------------------------------------
# BackboneTesterMixin
# ----------------------------------------------------------------------------------------

def test_backbone_config_alignment():
    config = DinatConfig()
    assert config.stage_names == ["stem"] + [f"stage{i}" for i in range(1, len(config.depths) + 1)]
    c = DinatConfig(out_features=None, out_indices=None)
    assert (c.out_features, c.out_indices) == ([c.stage_names[-1]], [len(c.stage_names) - 1])
    c = DinatConfig(out_features=["stem", "stage1"], out_indices=[0, 1])
    assert (c.out_features, c.out_indices) == (["stem", "stage1"], [0, 1])
    c = DinatConfig(out_features=["stage1", "stage3"])
    assert c.out_indices == [1, 3]
    c = DinatConfig(out_indices=[0, 2])
    assert c.out_features == ["stem", "stage2"]
    with pytest.raises(ValueError):
        DinatConfig(out_features=["stage1", "stage2"], out_indices=[0, 2])
    # changed on an existing config: the other one follows
    c.out_indices = [1, 4]
    assert c.out_features == ["stage1", "stage4"]
    c.out_features = ["stem"]
    assert c.out_indices == [0]
    c.out_features = None
    assert (c.out_features, c.out_indices) == (["stage4"], [4])
    with pytest.raises(ValueError, match="stage9"):
        c.out_features = ["stage9"]
    assert c.out_features == ["stage4"]  # unchanged by the failed assignment


def test_backbone_channels_and_modified_configs():
    config = get_config()
    model = DinatBackbone(config)
    num_features = model.num_features
    assert num_features == [16, 16, 32, 64]
    assert model.channels == [num_features[config.stage_names.index(f)] for f in config.out_features]
    for attr in ("out_features", "out_indices"):
        new = copy.deepcopy(config)
        setattr(new, attr, None)
        model = DinatBackbone(new).eval()
        assert model.channels == [num_features[-1]]
        with torch.no_grad():
            assert len(model(pixels()).feature_maps) == 1
    new = copy.deepcopy(config)
    new.use_pretrained_backbone = False
    with torch.no_grad():
        DinatBackbone(new).eval()(pixels())


def test_backbone_common_attributes_and_outputs():
    model = DinatBackbone(get_config()).eval()
    for name in ("backbone_type", "stage_names", "num_features", "out_indices", "out_features",
                 "out_feature_channels", "channels"):
        assert hasattr(model, name), name
    assert len(model.channels) == len(model.out_indices)
    assert len(model.stage_names) == len(model.num_features) == len(model.out_feature_channels)
    with torch.no_grad():
        out = model(pixels())
        assert isinstance(out.feature_maps, tuple) and len(out.feature_maps) == len(model.channels)
        for fm, c in zip(out.feature_maps, model.channels, strict=True):
            assert tuple(fm.shape[:2]) == (B, c)
        assert out.hidden_states is None and out.attentions is None
        assert len(model(pixels(), output_hidden_states=True).hidden_states) == len(model.stage_names)
        assert model(pixels(), output_attentions=True).attentions is not None


def test_backbone_type_is_transformers_own():
    try:
        from transformers.backbone_utils import BackboneType
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"transformers' BackboneType is not importable here: {e}")
    assert DinatBackbone(get_config()).backbone_type is BackboneType.TRANSFORMERS


def test_backbone_stage_selection():
    config = get_config(out_features=None, out_indices=[-2, -1])
    assert config.out_features == ["stage2", "stage3"] and config.out_indices == [2, 3]
    model = DinatBackbone(config).eval()
    with torch.no_grad():
        out = model(pixels())
    assert [tuple(m.shape[1:]) for m in out.feature_maps] == [(32, 8, 8), (64, 4, 4)]


# ----------------------------------------------------------------------------------------
# transformers itself as the reference
# ----------------------------------------------------------------------------------------

def test_config_round_trips_through_transformers(tmp_path):
    transformers, _, _ = hf()
    ours = get_config(id2label={i: f"class {i}" for i in range(NUM_LABELS)}, problem_type="regression",
                      layer_scale_init_value=1e-5)
    theirs = transformers.DinatConfig.from_dict(ours.to_dict())
    for key in ("embed_dim", "depths", "num_heads", "kernel_size", "dilations", "mlp_ratio",
                "layer_scale_init_value", "out_features", "out_indices", "num_labels", "id2label",
                "label2id", "problem_type", "num_layers", "hidden_size", "stage_names"):
        assert getattr(theirs, key) == getattr(ours, key), key
    assert theirs.image_size == IMAGE
    back = DinatConfig.from_dict(json.loads(theirs.to_json_string()))
    assert back.to_dict() | {"transformers_version": None} == ours.to_dict() | {"transformers_version": None}
    for kwargs in (dict(), dict(num_labels=5), dict(out_indices=[0, 2]), dict(out_features=["stage3"]),
                   dict(id2label={0: "a", 1: "b", 2: "c"})):
        a, b = DinatConfig(**kwargs), transformers.DinatConfig(**kwargs)
        assert (a.out_features, a.out_indices, a.num_labels, a.id2label) == (
            b.out_features, b.out_indices, b.num_labels, b.id2label), kwargs
        if b.label2id is not None:  # transformers leaves it None when only id2label is given
            assert a.label2id == b.label2id
    with pytest.raises(ValueError):
        transformers.DinatConfig(out_features=["stage1"], out_indices=[2])
    # directories: transformers reads our config.json, and we read a config.json it writes
    DinatForImageClassification(ours).save_pretrained(tmp_path / "ours")
    read = transformers.DinatConfig.from_pretrained(tmp_path / "ours")
    assert (read.id2label, read.dilations, read.architectures) == (
        ours.id2label, ours.dilations, ["DinatForImageClassification"])
    read.num_labels = 3
    read.save_pretrained(tmp_path / "ours")  # overwrites config.json only
    model = DinatForImageClassification.from_pretrained(tmp_path / "ours", ignore_mismatched_sizes=True)
    assert model.config.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    assert model.classifier.out_features == 3
    # configs transformers accepts (no model can be built from them) construct here too
    for kwargs in (dict(patch_size=2), dict(num_heads=[3, 4, 8, 16]), dict(depths=[2, 2]),
                   dict(hidden_act="relu"), dict(dilations=[[1, 8, 1]])):
        transformers.DinatConfig(**kwargs)
        DinatConfig(**kwargs)


@pytest.mark.parametrize("num_labels, problem, labels", [
    (1, None, torch.tensor([0.5, -1.0])),                                   # inferred: regression
    (4, None, torch.tensor([3, 0])),                                         # long: single label
    (4, None, torch.tensor([3, 0], dtype=torch.int32)),                      # int: single label
    (4, None, torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 1]])),                 # float: multi label
    (4, None, torch.tensor([[1, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.int16)),  # int16: multi label
    (4, "regression", torch.tensor([[0.1, 0.2, 0.3, 0.4], [1, 2, 3, 4.0]])),
    (4, "multi_label_classification", torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 1]])),
    (4, "single_label_classification", torch.tensor([2, 1])),
])
def test_problem_type_decides_the_loss_as_transformers_does(num_labels, problem, labels):
    transformers, hf_loss, _ = hf()
    config = get_config(num_labels=num_labels, problem_type=problem)
    model = DinatForImageClassification(config).eval()
    with torch.no_grad():
        out = model(pixels(), labels=labels)
    # transformers infers the problem type from the labels' dtype ...
    hf_config = transformers.DinatConfig(num_labels=num_labels, problem_type=problem)
    try:
        expected = hf_loss(labels, out.logits, hf_config)
    except RuntimeError:
        # ... but then hands int32 / int16 labels to torch losses that want int64 / floats;
        # we convert them, so compare with converted labels under the type it inferred.
        converted = labels.long() if labels.dtype == torch.int32 else labels.float()
        expected = hf_loss(converted, out.logits, hf_config)
    assert config.problem_type == hf_config.problem_type  # inferred the same, and stored
    torch.testing.assert_close(out.loss, expected.to(out.loss.dtype))
    # the NumPy model applies the same rule to the same logits
    from dinat_ref.numpy.model import classification_loss

    np_config = get_config(num_labels=num_labels, problem_type=problem)
    np_loss = classification_loss(out.logits.numpy().astype(np.float64), labels.numpy(), np_config)
    assert np_config.problem_type == hf_config.problem_type
    assert float(np_loss) == pytest.approx(float(expected), rel=1e-5, abs=1e-6)


def test_outputs_behave_like_transformers_model_output():
    _, _, ModelOutput = hf()
    from dataclasses import dataclass, fields

    from dinat_ref.hf.outputs import DinatImageClassifierOutput

    @dataclass
    class Reference(ModelOutput):
        loss: object = None
        logits: object = None
        hidden_states: object = None
        attentions: object = None
        reshaped_hidden_states: object = None

    assert [f.name for f in fields(DinatImageClassifierOutput)] == [f.name for f in fields(Reference)]
    logits, loss, hs = torch.randn(2, 3), torch.tensor(1.5), (torch.ones(1), torch.zeros(1))
    for kwargs in (dict(logits=logits), dict(loss=loss, logits=logits),
                   dict(logits=logits, hidden_states=hs)):
        ours, ref = DinatImageClassifierOutput(**kwargs), Reference(**kwargs)
        assert list(ours.keys()) == list(ref.keys()) == list(ours) == list(ref)
        assert len(ours.to_tuple()) == len(ref.to_tuple())
        for i in range(len(ref.to_tuple())):
            assert ours[i] is ref[i]
        for k in ref.keys():
            assert ours[k] is ref[k] and getattr(ours, k) is getattr(ref, k)
        assert ours[:1][0] is ref[:1][0]
        assert isinstance(ours, dict) and ("loss" in ours) == ("loss" in ref)
    out = DinatImageClassifierOutput(logits=logits)
    out.loss = loss  # set later: attribute only, as transformers (the key appears when set by key)
    ref = Reference(logits=logits)
    ref.loss = loss
    assert list(out.keys()) == list(ref.keys())
    out["loss"], ref["loss"] = loss, loss
    assert list(out.keys()) == list(ref.keys()) and out.loss is loss


def test_numpy_outputs_follow_the_same_rules():
    config = get_config()
    model = dn.DinatForImageClassification(config, random_state_dict(config, seed=0))
    x = pixels().numpy()
    out = model(x, labels=np.array([1, 2]))
    assert list(out.keys()) == ["loss", "logits"] and out[0] is out["loss"] is out.loss
    loss, logits = model(x, labels=np.array([1, 2]), return_dict=False)
    np.testing.assert_array_equal(logits, out.logits)
    config.output_hidden_states = True
    assert len(model(x).hidden_states) == 4 and "hidden_states" in model(x)
    bb = dn.DinatBackbone(config, random_state_dict(config, "backbone", seed=0))
    assert bb.channels == [16, 32] and bb.num_features == [16, 16, 32, 64]
    assert isinstance(bb(x, return_dict=False), tuple)
    assert model.main_input_name == "pixel_values" and model.num_labels == NUM_LABELS
    assert model.num_parameters() == sum(v.size for v in model.params.values())


def test_outputs_are_torch_pytree_nodes():
    """As transformers' ModelOutput: torch's pytree (DDP, compile, export) sees the tensors inside."""
    from dinat_ref.hf.outputs import DinatImageClassifierOutput

    out = DinatImageClassifierOutput(loss=torch.tensor(1.0), logits=torch.ones(2, 3))
    leaves, spec = torch.utils._pytree.tree_flatten(out)
    assert len(leaves) == 2 and leaves[1] is out.logits
    again = torch.utils._pytree.tree_unflatten([x * 2 for x in leaves], spec)
    assert isinstance(again, DinatImageClassifierOutput) and list(again.keys()) == ["loss", "logits"]
    assert float(again.loss) == 2.0


def test_torch_export_gives_the_same_outputs():
    """transformers' DiNAT test sets test_torch_exportable: export the classifier, compare."""
    model = DinatForImageClassification(get_config()).eval()
    x = pixels()
    with torch.no_grad():
        ref = model(x)  # eager first
        exported = torch.export.export(model, (x,)).module()(x)
    assert type(exported) is type(ref) and list(exported.keys()) == ["logits"]
    torch.testing.assert_close(exported["logits"], ref.logits, rtol=1e-5, atol=1e-6)


def test_gradient_checkpointing_with_reentrant_checkpoints():
    model = DinatForImageClassification(get_config(drop_path_rate=0.0)).train()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    model(pixels(), labels=torch.tensor([1, 2])).loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
