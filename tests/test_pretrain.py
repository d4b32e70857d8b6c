"""Backbone warm start: crop sampling, the crop classifier, weight copy and config checks."""

import numpy as np
import pytest
import tensorflow as tf
import yaml
from omegaconf import OmegaConf

from blindspots.config import ConfigError, load_params
from blindspots.config.schema import PretrainConfig
from blindspots.modeling import ssd
from blindspots.training import pretrain

HEIGHT, WIDTH = 64, 96
MODEL = OmegaConf.create(
    {
        "padding": "tf_same",
        "alignment": "tf",
        "input_size": [HEIGHT, WIDTH],
        "width_multiplier": 0.125,
        "min_depth": 8,
        "l2_weight_decay": 0.0,
        "batch_norm_momentum": 0.9,
        "anchors": {
            "num_layers": 6,
            "min_scale": 0.1,
            "max_scale": 0.6,
            "aspect_ratios": [1.0, 2.0, 0.5],
            "extra_aspect_ratios": [],
            "reduce_boxes_in_lowest_layer": True,
            "lowest_layer_ratios": [1.0, 2.0, 0.5],
        },
    }
)
RED, GREEN = (255, 0, 0), (0, 255, 0)


def frame_with_lights(lights):
    """A grey frame with a 3 x 3 square of colour per light, given as (y, x, colour, class)."""
    image = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
    boxes, classes = [], []
    for y, x, colour, label in lights:
        image[y - 1 : y + 2, x - 1 : x + 2] = colour
        boxes.append([(y - 1.5) / HEIGHT, (x - 1.5) / WIDTH, (y + 1.5) / HEIGHT, (x + 1.5) / WIDTH])
        classes.append(label)
    return {
        "image": image,
        "boxes": np.asarray(boxes, np.float32).reshape(-1, 4),
        "classes": np.asarray(classes, np.int32),
    }


def records_of(frames):
    def generate():
        yield from frames

    signature = {
        "image": tf.TensorSpec([HEIGHT, WIDTH, 3], tf.uint8),
        "boxes": tf.TensorSpec([None, 4], tf.float32),
        "classes": tf.TensorSpec([None], tf.int32),
    }
    return tf.data.Dataset.from_generator(generate, output_signature=signature)


def sample(frames, jitter=0, crops_per_light=1, backgrounds=0, seed=0, crop=16):
    return pretrain.sample_crops(records_of(frames), 4, (HEIGHT, WIDTH), crop, jitter, crops_per_light, backgrounds, seed)


def test_unjittered_crop_is_centred_on_the_light():
    crops = sample([frame_with_lights([(20, 30, RED, 3), (40, 70, GREEN, 1)])])
    assert crops.images.shape == (2, 16, 16, 3)
    assert crops.labels.tolist() == [3, 1]
    np.testing.assert_array_equal(crops.images[0, 8, 8], RED)
    np.testing.assert_array_equal(crops.images[1, 8, 8], GREEN)
    # The light's 3 x 3 square sits at rows and columns 7-9 of the crop.
    assert (crops.images[0, 7:10, 7:10] == RED).all()
    assert (crops.images[0, :7] == 90).all()


def test_jittered_crops_keep_the_light_within_the_jitter():
    jitter = 4
    crops = sample([frame_with_lights([(30, 48, RED, 3)])], jitter=jitter, crops_per_light=20)
    assert len(crops.labels) == 20
    positions = set()
    for image in crops.images:
        rows, cols = np.nonzero((image == RED).all(axis=-1))
        centre = (int(rows.mean()), int(cols.mean()))
        assert abs(centre[0] - 8) <= jitter
        assert abs(centre[1] - 8) <= jitter
        positions.add(centre)
    assert len(positions) > 5


def test_crop_past_frame_edge_is_mirrored():
    crops = sample([frame_with_lights([(1, 1, RED, 3)])])
    assert crops.images.shape == (1, 16, 16, 3)
    # numpy "reflect" mirrors without repeating the edge pixel: the square
    # at rows and columns 0-2 reappears at crop rows 7-9 and again above.
    assert (crops.images[0, 7:10, 7:10] == RED).all()
    assert (crops.images[0, 5:7, 5:7] == RED).all()


def test_background_crops_hold_no_light_centre():
    lights = [(20, 30, RED, 3), (40, 70, GREEN, 1), (50, 20, GREEN, 1)]
    crops = sample([frame_with_lights(lights)] * 5, backgrounds=4, seed=3)
    background = crops.images[crops.labels == 4]
    assert len(background) > 0
    for image in background:
        # No complete 3 x 3 square of a light's colour, so no light centre.
        for colour in (RED, GREEN):
            mask = (image == colour).all(axis=-1)
            assert not any(mask[r - 1 : r + 2, c - 1 : c + 2].all() for r in range(1, 15) for c in range(1, 15))


def test_empty_frames_give_only_background():
    crops = sample([frame_with_lights([])] * 3, backgrounds=2)
    assert crops.labels.tolist() == [4] * 6


def test_sampling_is_seeded():
    frames = [frame_with_lights([(20, 30, RED, 3), (40, 70, GREEN, 1)])] * 3
    first = sample(frames, jitter=5, crops_per_light=3, backgrounds=2, seed=7)
    again = sample(frames, jitter=5, crops_per_light=3, backgrounds=2, seed=7)
    other = sample(frames, jitter=5, crops_per_light=3, backgrounds=2, seed=8)
    np.testing.assert_array_equal(first.images, again.images)
    assert not np.array_equal(first.images, other.images)


def test_frames_are_resized_to_the_model_input():
    frame = frame_with_lights([(20, 30, RED, 3)])
    crops = pretrain.sample_crops(records_of([frame]), 4, (2 * HEIGHT, 2 * WIDTH), 16, 0, 1, 0, 0)
    rows, cols = np.nonzero(crops.images[0, :, :, 0] > 200)
    # The 3-pixel square is about 6 pixels wide at twice the size.
    assert 5 <= cols.max() - cols.min() + 1 <= 8


def test_crop_larger_than_input_is_rejected():
    with pytest.raises(ValueError, match="crop_size 80 exceeds the model input 64 x 96"):
        sample([frame_with_lights([])], crop=80)


def test_class_balanced_probabilities():
    labels = np.array([0, 1, 1, 1, 4, 4])
    probabilities = pretrain._sampling_probabilities(labels, 5)
    by_label = [probabilities[labels == k].sum() for k in (0, 1, 4)]
    np.testing.assert_allclose(by_label, [1 / 3] * 3)


def test_classifier_shares_the_detector_backbone_names():
    detector = ssd.build_ssd(MODEL, 4)
    classifier = pretrain.build_crop_classifier(MODEL, 4, 32)
    assert classifier.output_shape == (None, 5)
    backbone = [layer.name for layer in classifier.layers if layer.name.startswith("Conv2d_")]
    assert "Conv2d_0" in backbone
    assert "Conv2d_13_pointwise_BatchNorm" in backbone
    for name in backbone:
        assert [w.shape for w in classifier.get_layer(name).weights] == [w.shape for w in detector.get_layer(name).weights]


def test_copy_backbone_copies_only_backbone_layers():
    tf.keras.utils.set_random_seed(1)
    detector = ssd.build_ssd(MODEL, 4)
    classifier = pretrain.build_crop_classifier(MODEL, 4, 32)
    predictor_before = [w.copy() for w in detector.get_layer("BoxPredictor_0_class").get_weights()]
    copied = pretrain.copy_backbone(classifier, detector)
    assert copied == sum(len(l.weights) for l in classifier.layers if l.name.startswith("Conv2d_"))
    for layer in classifier.layers:
        if layer.name.startswith("Conv2d_"):
            for ours, theirs in zip(layer.get_weights(), detector.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(ours, theirs)
    for before, after in zip(predictor_before, detector.get_layer("BoxPredictor_0_class").get_weights()):
        np.testing.assert_array_equal(before, after)


def test_copy_backbone_rejects_another_width():
    narrow = pretrain.build_crop_classifier(MODEL, 4, 32)
    wide = pretrain.build_crop_classifier(OmegaConf.merge(MODEL, {"width_multiplier": 0.5}), 4, 32)
    with pytest.raises(ValueError, match="backbone layer Conv2d_0: shapes"):
        pretrain.copy_backbone(narrow, wide)


def test_pretraining_separates_red_from_green():
    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    frames = []
    kinds = [(RED, 3), (GREEN, 1)]
    for _ in range(12):
        lights = []
        for _ in range(2):
            colour, label = kinds[int(rng.integers(2))]
            lights.append((int(rng.integers(8, 56)), int(rng.integers(8, 88)), colour, label))
        frames.append(frame_with_lights(lights))
    detector = ssd.build_ssd(MODEL, 4)
    before = detector.get_layer("Conv2d_1_pointwise").get_weights()[0].copy()
    config = OmegaConf.structured(PretrainConfig(steps=60, batch_size=16, learning_rate=0.01, crop_size=32, jitter=4, crops_per_light=4, backgrounds_per_image=0))
    result = pretrain.pretrain_backbone(detector, records_of(frames), MODEL, config, 4, seed=0)
    assert result.steps == 60
    assert result.crops == 12 * 2 * 4
    assert result.crops_by_label[1] + result.crops_by_label[3] == result.crops
    # Two present labels, so chance is 0.5.
    assert result.final_accuracy > 0.8
    assert not np.array_equal(before, detector.get_layer("Conv2d_1_pointwise").get_weights()[0])


def write_params(tmp_path, pretrain_cfg, **variant):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"train": {"pretrain": pretrain_cfg}, "variants": {"baseline": variant}}))
    return path


@pytest.mark.parametrize(
    ("pretrain_cfg", "variant", "message"),
    [
        ({"steps": -1}, {}, "invalid value -1 for 'train.pretrain.steps'"),
        ({"steps": 10, "learning_rate": 0.0}, {}, "'train.pretrain.learning_rate'"),
        ({"steps": 10, "crop_size": 32, "jitter": 16}, {}, "'train.pretrain.jitter'. Allowed: 0 to 15"),
        ({"steps": 10, "crop_size": 200}, {}, "'train.pretrain.crop_size'. Allowed: at most 192, the shorter input side of variant 'baseline'"),
        ({"steps": 10, "crop_size": 16, "jitter": 4}, {"padding": "symmetric"}, "'train.pretrain.crop_size'. Allowed: at least 17 px for padding 'symmetric'"),
    ],
)
def test_invalid_pretrain_config(tmp_path, pretrain_cfg, variant, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_params(write_params(tmp_path, pretrain_cfg, **variant))


def test_crop_size_unchecked_when_off(tmp_path):
    config = load_params(write_params(tmp_path, {"steps": 0, "crop_size": 500}))
    assert config.train.pretrain.crop_size == 500
