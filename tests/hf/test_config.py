"""DinatConfig: Hugging Face defaults, validation, config.json round trips, presets, parameter counts."""

from __future__ import annotations

import json

import pytest

from dinat_ref import PRESETS, DinatConfig, preset_names
from dinat_ref.config import PRESET_RESULTS
from dinat_ref.hf.weights import count_parameters

# A config.json as Hugging Face transformers writes it for shi-labs/dinat-mini-in1k-224
# (abridged: 3 of the 1000 labels), typed in from the model card's fields.
HF_CONFIG_JSON = {
    "_name_or_path": "shi-labs/dinat-mini-in1k-224",
    "architectures": ["DinatForImageClassification"],
    "attention_probs_dropout_prob": 0.0,
    "depths": [3, 4, 6, 5],
    "dilations": [[1, 8, 1], [1, 4, 1, 4], [1, 2, 1, 2, 1, 2], [1, 1, 1, 1, 1]],
    "drop_path_rate": 0.2,
    "embed_dim": 64,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "hidden_size": 512,
    "id2label": {"0": "tench, Tinca tinca", "1": "goldfish", "2": "great white shark"},
    "initializer_range": 0.02,
    "kernel_size": 7,
    "label2id": {"tench, Tinca tinca": 0, "goldfish": 1, "great white shark": 2},
    "layer_norm_eps": 1e-05,
    "layer_scale_init_value": 0.0,
    "mlp_ratio": 3.0,
    "model_type": "dinat",
    "num_channels": 3,
    "num_heads": [2, 4, 8, 16],
    "num_layers": 4,
    "out_features": ["stage4"],
    "out_indices": [4],
    "patch_size": 4,
    "path_norm": True,
    "qkv_bias": True,
    "stage_names": ["stem", "stage1", "stage2", "stage3", "stage4"],
    "torch_dtype": "float32",
    "transformers_version": "4.26.0.dev0",
}


def test_defaults_are_hugging_face_defaults():
    c = DinatConfig()
    assert (c.patch_size, c.num_channels, c.embed_dim, c.kernel_size) == (4, 3, 64, 7)
    assert c.depths == [3, 4, 6, 5] and c.num_heads == [2, 4, 8, 16]
    assert c.dilations == [[1, 8, 1], [1, 4, 1, 4], [1, 2, 1, 2, 1, 2], [1, 1, 1, 1, 1]]
    assert (c.mlp_ratio, c.qkv_bias, c.drop_path_rate, c.hidden_act) == (3.0, True, 0.1, "gelu")
    assert (c.hidden_dropout_prob, c.attention_probs_dropout_prob) == (0.0, 0.0)
    assert (c.initializer_range, c.layer_norm_eps, c.layer_scale_init_value) == (0.02, 1e-5, 0.0)
    assert c.num_layers == 4 and c.hidden_size == 512
    assert c.stage_names == ["stem", "stage1", "stage2", "stage3", "stage4"]
    assert c.out_features == ["stage4"] and c.out_indices == [4]


def test_reads_a_hugging_face_config_json(tmp_path):
    p = tmp_path / "config.json"
    p.write_text(json.dumps(HF_CONFIG_JSON))
    c = DinatConfig.from_json_file(p)
    assert c.num_labels == 3 and c.id2label[1] == "goldfish"
    assert c.drop_path_rate == 0.2 and c.depths == [3, 4, 6, 5]
    # unknown keys are kept, and written back
    assert c.extra["path_norm"] is True and c.extra["architectures"] == ["DinatForImageClassification"]
    out = c.to_dict()
    for key, value in HF_CONFIG_JSON.items():
        if key != "_name_or_path":
            assert out[key] == value, key
    c.to_json_file(tmp_path / "again.json")
    assert DinatConfig.from_json_file(tmp_path / "again.json") == c


def test_round_trip_of_a_custom_config(tmp_path):
    c = DinatConfig(embed_dim=32, depths=[2, 1], num_heads=[2, 4], dilations=[[1, 2], [1]],
                    kernel_size=5, num_labels=7, num_channels=1, out_features=["stem", "stage2"])
    assert c.out_indices == [0, 2]
    assert DinatConfig.from_dict(json.loads(c.to_json_string())) == c
    c.save_pretrained(tmp_path)
    assert DinatConfig.from_pretrained(tmp_path) == c


@pytest.mark.parametrize("kwargs, words", [
    (dict(patch_size=2), ["patch_size=2", "4"]),
    (dict(dilations=[[1, 8, 1], [1, 4, 1, 4], [1, 2, 1, 2, 1], [1] * 5]), ["dilations[2]", "depths[2]=6"]),
    (dict(dilations=[[1, 8, 1]]), ["dilations has 1 stages", "depths"]),
    (dict(dilations=[[1, 0, 1], [1, 4, 1, 4], [1, 2, 1, 2, 1, 2], [1] * 5]), ["dilations[0]", ">= 1"]),
    (dict(num_heads=[2, 4, 8]), ["num_heads", "one entry per stage"]),
    (dict(num_heads=[3, 4, 8, 16]), ["num_heads[0]=3", "64"]),
    (dict(depths=[]), ["depths"]),
    (dict(kernel_size=1), ["kernel_size=1"]),
    (dict(hidden_act="relu"), ["hidden_act='relu'"]),
    (dict(drop_path_rate=1.5), ["drop_path_rate=1.5"]),
    (dict(layer_scale_init_value=-1.0), ["layer_scale_init_value"]),
    (dict(out_features=["stage9"]), ["stage9", "stem"]),
    (dict(out_features=["stage1"], out_indices=[2]), ["disagree"]),
    (dict(out_indices=[7]), ["out_indices"]),
    (dict(num_labels=-1), ["num_labels=-1"]),
])
def test_validation_errors_name_the_field(kwargs, words):
    """Types and ranges fail at construction, combinations when a model is built (validate)."""
    with pytest.raises(ValueError) as e:
        DinatConfig(**kwargs).validate()
    for w in words:
        assert w in str(e.value)


def test_presets_match_the_paper_architectures():
    assert preset_names() == ["mini", "tiny", "small", "base", "large", "large-384", "large-11x11-384"]
    assert set(PRESET_RESULTS) == set(PRESETS)
    base = DinatConfig.from_preset("base")
    assert base.layer_scale_init_value == 1e-5 and base.embed_dim == 128
    l384 = DinatConfig.from_preset("large-384")
    assert l384.dilations == [[1, 13, 1], [1, 6, 1, 6], [1, 3] * 9, [1] * 5]
    assert DinatConfig.from_preset("large-11x11-384").kernel_size == 11
    assert DinatConfig.from_preset("mini", num_labels=10).num_labels == 10
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        DinatConfig.from_preset("huge")


def _closed_form_params(c: DinatConfig) -> int:
    """Parameters from the architecture's formula, written independently of the name tables."""
    e, k = c.embed_dim, c.kernel_size
    n = (c.num_channels * 9 + 1) * (e // 2) + (e // 2 * 9 + 1) * e + 2 * e  # two convs + LayerNorm
    for i, (depth, heads) in enumerate(zip(c.depths, c.num_heads, strict=True)):
        d = e * 2**i
        r = int(c.mlp_ratio * d)
        per_layer = (4 * d * d + 4 * d  # q, k, v, proj (+ biases)
                     + heads * (2 * k - 1) ** 2  # rpb
                     + 2 * d * r + r + d  # MLP
                     + 4 * d  # two LayerNorms
                     + (2 * d if c.layer_scale_init_value > 0 else 0))
        n += depth * per_layer
        if i < len(c.depths) - 1:
            n += 9 * d * 2 * d + 4 * d  # downsampler conv (no bias) + LayerNorm(2d)
    h = c.hidden_size
    return n + 2 * h + (h + 1) * c.num_labels


@pytest.mark.parametrize("name", list(PRESETS))
def test_parameter_counts_match_the_paper(name):
    c = DinatConfig.from_preset(name)
    n = count_parameters(c)
    assert n == _closed_form_params(c)
    # The paper rounds to the nearest million (20M, 28M, 51M, 90M, 200M).
    assert round(n / 1e6) == PRESET_RESULTS[name]["params_m"] or (
        name.startswith("large") and abs(n / 1e6 - 200) < 1.5), (name, n)


def test_preset_dilations_are_the_shi_labs_lists():
    """Typed from SHI-Labs' classification/dinat.py, independently of the rule that makes them."""
    d224 = [[1, 8, 1], [1, 4, 1, 4], [1, 2] * 9, [1] * 5]
    assert DinatConfig.from_preset("mini").dilations == [[1, 8, 1], [1, 4, 1, 4], [1, 2, 1, 2, 1, 2], [1] * 5]
    for name in ("tiny", "small", "base", "large", "large-11x11-384"):
        assert DinatConfig.from_preset(name).dilations == d224, name


def test_preset_table_in_the_docstring_and_the_readme_come_from_one_table():
    import pathlib

    import dinat_ref.config as config_module
    from dinat_ref.config import PRESET_TABLE

    readme = (pathlib.Path(__file__).parents[2] / "README.md").read_text()
    for name, p in PRESET_TABLE.items():
        row = [r for r in config_module.__doc__.splitlines() if r.strip().startswith(name + " ")]
        assert row and f"{p.top1}%" in row[0] and f"{p.params_m}M" in row[0], name
        md = [r for r in readme.splitlines() if r.startswith(f"| `{name}`")]
        assert md and f"| {p.resolution} | {p.kernel_size}x{p.kernel_size} | {p.top1}% | {p.params_m}M | " \
            f"{p.gmacs}G |" in md[0], name


@pytest.mark.parametrize("kwargs", [
    dict(patch_size=2), dict(num_heads=[3, 4, 8, 16]), dict(depths=[2, 2]), dict(hidden_act="relu"),
    dict(dilations=[[1, 8, 1]]), dict(kernel_size=1),
])
def test_a_config_transformers_accepts_constructs_and_fails_when_a_model_is_built(kwargs):
    pytest.importorskip("torch")
    from dinat_ref.numpy import DinatModel as NumpyModel
    from dinat_ref.torch import DinatModel

    config = DinatConfig(**kwargs)  # as transformers.DinatConfig(**kwargs): no error yet
    with pytest.raises(ValueError, match="DinatModel: cannot build this config: DinatConfig: "):
        DinatModel(config)
    with pytest.raises(ValueError, match="DinatModel: cannot build this config: DinatConfig: "):
        NumpyModel(config, {})
