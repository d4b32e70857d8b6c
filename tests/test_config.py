"""The params loader: composition, validation messages, overrides and run lists."""

from pathlib import Path

import pytest
import yaml

from blindspots.config import ConfigError, load_params, resolve_variant, run_ids, section
from blindspots.stages import pipeline

REPO = Path(__file__).resolve().parents[1]


def write_params(tmp_path, data):
    """Write a params file next to a copy of the repository's presets."""
    presets = tmp_path / "conf" / "presets"
    presets.mkdir(parents=True)
    for preset in (REPO / "conf" / "presets").glob("*.yaml"):
        (presets / preset.name).write_text(preset.read_text())
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


BASE = {"variants": {"baseline": {}}}


def test_repository_params_load():
    config = load_params(REPO / "params.yaml")
    assert list(config.variants) == ["tf_same_even", "tf_same_odd", "symmetric_even", "circular_even"]
    assert resolve_variant(config, "tf_same_odd").model.input_size == [193, 321]


def test_params_win_over_preset(tmp_path):
    path = write_params(tmp_path, {**BASE, "preset": "tiny", "train": {"steps": 7}})
    config = load_params(path)
    assert config.train.steps == 7
    assert config.model.input_size == [64, 96]


def test_override_wins_over_params(tmp_path):
    path = write_params(tmp_path, {**BASE, "train": {"steps": 7}})
    config = load_params(path, ["train.steps=9", "model.padding=circular"])
    assert config.train.steps == 9
    assert config.model.padding == "circular"


def test_unknown_key_suggests_nearest(tmp_path):
    path = write_params(tmp_path, {**BASE, "model": {"paddng": "tf_same"}})
    with pytest.raises(ConfigError, match="unknown key 'model.paddng'. Did you mean 'padding'"):
        load_params(path)


def test_unknown_variant_key_suggests_nearest(tmp_path):
    path = write_params(tmp_path, {"variants": {"a": {"input_sise": [64, 64]}}})
    with pytest.raises(ConfigError, match="'variants.a.input_sise'. Did you mean 'input_size'"):
        load_params(path)


def test_unknown_padding_lists_modes(tmp_path):
    path = write_params(tmp_path, {"variants": {"a": {"padding": "mirror"}}})
    with pytest.raises(ConfigError) as error:
        load_params(path)
    message = str(error.value)
    assert "'mirror'" in message
    assert "tf_same, zero_explicit, reflect, symmetric, replicate, circular, partial, valid" in message


def test_input_too_small_states_minimum(tmp_path):
    path = write_params(tmp_path, {"variants": {"small": {"input_size": [16, 64]}}})
    with pytest.raises(ConfigError, match="too small for the network's depth .* minimum side is 17 px"):
        load_params(path)


def test_reflect_minimum_side(tmp_path):
    # REFLECT needs pad <= n - 1, so the 1-pixel input of the last extra
    # layer (stride 256) cannot be padded: 257 is the smallest side.
    path = write_params(tmp_path, {"variants": {"r": {"padding": "reflect", "input_size": [192, 320]}}})
    with pytest.raises(ConfigError, match="minimum side is 257 px"):
        load_params(path)


def test_negative_learning_rate(tmp_path):
    path = write_params(tmp_path, {**BASE, "train": {"learning_rate": -0.1}})
    with pytest.raises(ConfigError, match="invalid value -0.1 for 'train.learning_rate'. Allowed: a number > 0"):
        load_params(path)


def test_negative_precise_bn_batches(tmp_path):
    path = write_params(tmp_path, {**BASE, "train": {"precise_bn_batches": -1}})
    with pytest.raises(ConfigError, match="invalid value -1 for 'train.precise_bn_batches'. Allowed: a number >= 0"):
        load_params(path)


def test_negative_clip_norm(tmp_path):
    path = write_params(tmp_path, {**BASE, "train": {"clip_norm": -1.0}})
    with pytest.raises(ConfigError, match="invalid value -1.0 for 'train.clip_norm'. Allowed: a number >= 0"):
        load_params(path)


def test_repeat_factor_threshold_above_one(tmp_path):
    path = write_params(tmp_path, {**BASE, "train": {"repeat_factor_threshold": 1.5}})
    with pytest.raises(ConfigError, match="invalid value 1.5 for 'train.repeat_factor_threshold'. Allowed: a number between 0 and 1"):
        load_params(path)


def test_class_weight_for_unknown_class(tmp_path):
    path = write_params(tmp_path, {**BASE, "model": {"class_weights": {"Blue": 2.0}}})
    with pytest.raises(ConfigError, match="invalid value 'Blue' for 'model.class_weights'. Allowed: a class of prepare.label_map '4class': Off, Green, Yellow, Red"):
        load_params(path)


def test_class_weight_must_be_positive(tmp_path):
    path = write_params(tmp_path, {**BASE, "model": {"class_weights": {"Yellow": 0.0}}})
    with pytest.raises(ConfigError, match="invalid value 0.0 for 'model.class_weights.Yellow'. Allowed: a positive, finite number"):
        load_params(path)


def test_unquoted_off_class_weight_gets_hint(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("variants: {baseline: {}}\nmodel:\n  class_weights:\n    Off: 8.0\n")
    with pytest.raises(ConfigError, match=r"'model.class_weights.False'.*quote it, as in \"Off\": 8.0"):
        load_params(path)


def test_class_weights_follow_label_map(tmp_path):
    path = write_params(tmp_path, {**BASE, "prepare": {"label_map": "1class"}, "model": {"class_weights": {"Yellow": 2.0}}})
    with pytest.raises(ConfigError, match="'1class': TrafficLight"):
        load_params(path)
    path = write_params(tmp_path / "one", {**BASE, "prepare": {"label_map": "1class"}, "model": {"class_weights": {"TrafficLight": 2.0}}})
    assert load_params(path).model.class_weights == {"TrafficLight": 2.0}


@pytest.mark.parametrize("name", ["a/b", "../up", ".hidden", "with space"])
def test_variant_name_must_be_path_segment(tmp_path, name):
    path = write_params(tmp_path, {"variants": {name: {}}})
    with pytest.raises(ConfigError, match="usable as a path segment"):
        load_params(path)


def test_wrong_type(tmp_path):
    path = write_params(tmp_path, {**BASE, "train": {"steps": "many"}})
    with pytest.raises(ConfigError, match="train.steps"):
        load_params(path)


def test_empty_variants(tmp_path):
    path = write_params(tmp_path, {"train": {"steps": 5}})
    with pytest.raises(ConfigError, match="'variants' is empty"):
        load_params(path)


def test_missing_params_file(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "absent.yaml")


def test_unknown_preset(tmp_path):
    path = write_params(tmp_path, {**BASE, "preset": "huge"})
    with pytest.raises(ConfigError, match="preset 'huge' not found .* Available presets: bstld, tiny"):
        load_params(path)


def test_malformed_override(tmp_path):
    path = write_params(tmp_path, BASE)
    with pytest.raises(ConfigError, match="not of the form key=value"):
        load_params(path, ["train.steps"])


def test_duplicate_seeds(tmp_path):
    path = write_params(tmp_path, {"variants": {"a": {"seeds": [1, 1]}}})
    with pytest.raises(ConfigError, match="distinct integer seeds"):
        load_params(path)


def test_variant_overrides_only_its_keys(tmp_path):
    path = write_params(tmp_path, {"model": {"width_multiplier": 0.5}, "variants": {"a": {"padding": "circular"}, "b": {}}})
    config = load_params(path)
    a = resolve_variant(config, "a").model
    b = resolve_variant(config, "b").model
    assert (a.padding, a.width_multiplier) == ("circular", 0.5)
    assert (b.padding, b.width_multiplier) == ("tf_same", 0.5)


def test_unknown_variant_suggests(tmp_path):
    config = load_params(write_params(tmp_path, {"variants": {"tf_same_even": {}}}))
    with pytest.raises(ConfigError, match="Did you mean 'tf_same_even'"):
        resolve_variant(config, "tf_same_evn")


def test_run_ids_expand_seeds(tmp_path):
    config = load_params(write_params(tmp_path, {"variants": {"a": {"seeds": [0, 2]}, "b": {}}}))
    assert run_ids(config) == [("a", 0), ("a", 2), ("b", 0)]


def test_section_is_read_only(tmp_path):
    config = load_params(write_params(tmp_path, BASE))
    train = section(config, "train")
    with pytest.raises(Exception):
        train.steps = 3


def test_runs_document(tmp_path):
    config = load_params(write_params(tmp_path, {"variants": {"a": {"seeds": [0, 2]}}}))
    assert pipeline.runs_document(config) == {
        "runs": {"a-s0": {"variant": "a", "seed": 0}, "a-s2": {"variant": "a", "seed": 2}},
        "analyses": {"a": {"seed": 0}},
    }


def test_runs_file_out_of_sync(tmp_path):
    config = load_params(write_params(tmp_path, {"variants": {"a": {}}}))
    stale = tmp_path / "runs.yaml"
    stale.write_text(yaml.safe_dump({"runs": {}}))
    with pytest.raises(ConfigError, match="out of date"):
        pipeline.check_in_sync(config, stale)


def test_repository_runs_file_in_sync():
    config = load_params(REPO / "params.yaml")
    pipeline.check_in_sync(config, REPO / "conf" / "runs.yaml")
