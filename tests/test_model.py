"""SSD MobileNet v1: feature maps, anchors, parameter counts and weight loading."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from omegaconf import OmegaConf

import blindspots  # noqa: F401
from blindspots.config.schema import ModelConfig
from blindspots.modeling import anchors as anchor_lib
from blindspots.modeling import geometry, mobilenet_v1, ssd


def model_cfg(**overrides):
    cfg = OmegaConf.structured(ModelConfig)
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value)
    return cfg


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        # 192 -> 96 -> 48 -> 24 -> 12 (stride 16) -> 6 (stride 32) -> 3 -> 2 -> 1 -> 1
        # 320 -> 160 -> 80 -> 40 -> 20 -> 10 -> 5 -> 3 -> 2 -> 1
        ((192, 320), [(12, 20), (6, 10), (3, 5), (2, 3), (1, 2), (1, 1)]),
        # 193 -> 97 -> 49 -> 25 -> 13 -> 7 -> 4 -> 2 -> 1 -> 1
        # 321 -> 161 -> 81 -> 41 -> 21 -> 11 -> 6 -> 3 -> 2 -> 1
        ((193, 321), [(13, 21), (7, 11), (4, 6), (2, 3), (1, 2), (1, 1)]),
    ],
)
def test_feature_map_sizes(size, expected):
    assert geometry.feature_map_sizes(size, "tf_same", "tf") == expected


def test_valid_too_small_names_layer():
    # VALID 3x3 layers shrink every map: 192 -> 95 -> 93 -> 46 -> 44 -> 21
    # -> 19 -> 9 -> 7, 5, 3, 1, -1 (Conv2d_11_depthwise) and the trace stops.
    with pytest.raises(geometry.GeometryError, match="layer Conv2d_11_depthwise gets height 1"):
        geometry.trace_network((192, 320), "valid", "tf")


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        # anchors per location: 3 in the lowest layer, 5 ratios + 1 extra
        # tall + 1 in-between square = 7 elsewhere.
        # 12*20*3 + 6*10*7 + 3*5*7 + 2*3*7 + 1*2*7 + 1*1*7 = 720 + 420 + 105 + 42 + 14 + 7
        ((192, 320), 1308),
        # 13*21*3 + 7*11*7 + 4*6*7 + 2*3*7 + 1*2*7 + 1*1*7 = 819 + 539 + 168 + 42 + 14 + 7
        ((193, 321), 1589),
    ],
)
def test_anchor_counts(size, expected):
    cfg = model_cfg(input_size=list(size))
    assert anchor_lib.anchors_per_location(cfg) == [3, 7, 7, 7, 7, 7]
    assert len(anchor_lib.generate_anchors(size, cfg)) == expected


def test_model_outputs_match_anchors():
    cfg = model_cfg(input_size=[64, 96], width_multiplier=0.125)
    model = ssd.build_ssd(cfg, num_classes=4)
    outputs = model(tf.zeros([2, 64, 96, 3]))
    count = len(anchor_lib.generate_anchors((64, 96), cfg))
    assert outputs["box_encodings"].shape == (2, count, 4)
    assert outputs["class_logits"].shape == (2, count, 4)


def test_layer_scales_linear():
    scales = anchor_lib.layer_scales(0.2, 0.95, 6)
    np.testing.assert_allclose(scales, [0.2, 0.35, 0.5, 0.65, 0.8, 0.95])


def test_anchor_coordinates_tiny_grid():
    # 32 x 64 input, tf_same: the stride-16 map is 2 x 4. Scale 0.25 of the
    # shorter side (32) gives an 8 px base. Ratio 1: 8 x 8 box; ratio 4
    # (width / height): height 8 / 2 = 4, width 8 * 2 = 16. Centres sit at
    # (i + 0.5) * 16: y in {8, 24}, x in {8, 24, 40, 56}.
    cfg = model_cfg(input_size=[32, 64])
    cfg.anchors.min_scale = 0.25
    cfg.anchors.lowest_layer_ratios = [1.0, 4.0, 1.0]
    anchors = anchor_lib.generate_anchors((32, 64), cfg)
    first_layer = anchors[: 2 * 4 * 3].reshape(2, 4, 3, 4)
    np.testing.assert_allclose(first_layer[0, 0, 0], [4, 4, 12, 12], atol=1e-5)
    np.testing.assert_allclose(first_layer[0, 0, 1], [6, 0, 10, 16], atol=1e-5)
    np.testing.assert_allclose(first_layer[1, 3, 0], [20, 52, 28, 60], atol=1e-5)


def test_anchor_coverage_extra_thresholds():
    # Same grid as above. An 8 x 8 box at [4, 4, 12, 12] equals the first
    # anchor (IoU 1). A box shifted by 4 px in x overlaps it 4 x 8 px, so
    # IoU = 32 / (64 + 64 - 32) = 1/3, and no other anchor does better.
    cfg = model_cfg(input_size=[32, 64])
    cfg.anchors.min_scale = 0.25
    cfg.anchors.lowest_layer_ratios = [1.0, 4.0, 1.0]
    boxes = np.array([[4, 4, 12, 12], [4, 8, 12, 16]], dtype=np.float64)
    coverage = anchor_lib.anchor_coverage(boxes, (32, 64), cfg, iou_threshold=0.3, extra_thresholds=(0.5, 0.3))
    assert coverage["covered_share"] == 1.0
    assert coverage["covered_share_by_iou"] == {"0.3": 1.0, "0.5": 0.5}


def _expected_backbone_parameters(width, min_depth=8):
    """Conv weights plus 4 batch-norm values (gamma, beta, mean, variance) per channel."""
    depth = geometry.scaled_depth(geometry.STEM_DEPTH, width, min_depth)
    total = 3 * 3 * 3 * depth + 4 * depth
    for _, out_depth in geometry.MOBILENET_V1_BLOCKS:
        out = geometry.scaled_depth(out_depth, width, min_depth)
        total += 3 * 3 * depth + 4 * depth  # depthwise
        total += depth * out + 4 * out  # pointwise
        depth = out
    return total


@pytest.mark.parametrize(("width", "expected"), [(0.25, 218_544), (0.5, 829_536), (1.0, 3_228_864)])
def test_backbone_parameter_counts(width, expected):
    # The expected values equal tf_keras.applications.MobileNet(alpha=width,
    # include_top=False) at these widths, checked against it below.
    assert _expected_backbone_parameters(width) == expected
    cfg = model_cfg(width_multiplier=width, input_size=[64, 64])
    inputs = tf_keras.Input((64, 64, 3))
    backbone = tf_keras.Model(inputs, mobilenet_v1.build_backbone(inputs, cfg)["Conv2d_13_pointwise"])
    assert backbone.count_params() == expected


def test_backbone_matches_keras_applications():
    reference = tf_keras.applications.MobileNet(
        input_shape=(96, 96, 3), alpha=0.25, include_top=False, weights=None
    )
    assert reference.count_params() == _expected_backbone_parameters(0.25)


def _expected_ssd_parameters(width, num_classes, per_location, min_depth=8):
    total = _expected_backbone_parameters(width, min_depth)
    channels = [geometry.scaled_depth(512, width, min_depth), geometry.scaled_depth(1024, width, min_depth)]
    depth = channels[-1]
    for extra in geometry.EXTRA_LAYER_DEPTHS:
        out = geometry.scaled_depth(extra, width, min_depth)
        half = max(out // 2, min_depth)
        total += depth * half + 4 * half  # 1x1
        total += 9 * half * out + 4 * out  # 3x3 stride 2
        channels.append(out)
        depth = out
    for c, k in zip(channels, per_location):
        total += 9 * c * 4 * k + 4 * k  # box predictor with bias
        total += 9 * c * k * num_classes + k * num_classes  # class predictor with bias
    return total


@pytest.mark.parametrize("width", [0.125, 0.25, 0.5])
def test_ssd_parameter_counts(width):
    cfg = model_cfg(width_multiplier=width, input_size=[64, 96])
    model = ssd.build_ssd(cfg, num_classes=4)
    expected = _expected_ssd_parameters(width, 4, anchor_lib.anchors_per_location(cfg))
    assert model.count_params() == expected


def _write_slim_checkpoint(prefix, variables):
    names = list(variables)
    tf.raw_ops.SaveV2(
        prefix=str(prefix),
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.constant(variables[name]) for name in names],
    )


def test_load_slim_checkpoint(tmp_path):
    cfg = model_cfg(width_multiplier=0.125, input_size=[64, 64])
    model = ssd.build_ssd(cfg, num_classes=4)
    stem = model.get_layer("Conv2d_0").kernel
    pointwise = model.get_layer("Conv2d_13_pointwise").kernel
    gamma = model.get_layer("Conv2d_1_depthwise_BatchNorm").gamma
    rng = np.random.default_rng(0)
    values = {
        "MobilenetV1/Conv2d_0/weights": rng.normal(size=stem.shape).astype(np.float32),
        "MobilenetV1/Conv2d_13_pointwise/weights": rng.normal(size=pointwise.shape).astype(np.float32),
        "MobilenetV1/Conv2d_1_depthwise/BatchNorm/gamma": rng.normal(size=gamma.shape).astype(np.float32),
    }
    _write_slim_checkpoint(tmp_path / "mobilenet", values)
    loaded = mobilenet_v1.load_pretrained(model, tmp_path / "mobilenet")
    assert loaded == 3
    np.testing.assert_array_equal(stem.numpy(), values["MobilenetV1/Conv2d_0/weights"])
    np.testing.assert_array_equal(pointwise.numpy(), values["MobilenetV1/Conv2d_13_pointwise/weights"])
    np.testing.assert_array_equal(gamma.numpy(), values["MobilenetV1/Conv2d_1_depthwise/BatchNorm/gamma"])


def test_load_slim_checkpoint_shape_mismatch(tmp_path):
    cfg = model_cfg(width_multiplier=0.125, input_size=[64, 64])
    model = ssd.build_ssd(cfg, num_classes=4)
    _write_slim_checkpoint(tmp_path / "wide", {"MobilenetV1/Conv2d_0/weights": np.zeros((3, 3, 3, 32), np.float32)})
    with pytest.raises(ValueError, match="Conv2d_0/weights has shape .*width_multiplier"):
        mobilenet_v1.load_pretrained(model, tmp_path / "wide")


def test_load_missing_checkpoint(tmp_path):
    cfg = model_cfg(width_multiplier=0.125, input_size=[64, 64])
    model = ssd.build_ssd(cfg, num_classes=4)
    with pytest.raises(FileNotFoundError, match="no checkpoint at prefix"):
        mobilenet_v1.load_pretrained(model, tmp_path / "absent")


def test_load_keras_weights_file(tmp_path):
    cfg = model_cfg(width_multiplier=0.125, input_size=[64, 64])
    source = ssd.build_ssd(cfg, num_classes=4)
    path = tmp_path / "backbone.h5"
    source.save_weights(str(path))
    target = ssd.build_ssd(cfg, num_classes=4)
    mobilenet_v1.load_pretrained(target, path)
    np.testing.assert_array_equal(
        target.get_layer("Conv2d_5_pointwise").kernel.numpy(), source.get_layer("Conv2d_5_pointwise").kernel.numpy()
    )


def test_layer_names_follow_slim_scheme():
    cfg = model_cfg(width_multiplier=0.125, input_size=[64, 64])
    names = {layer.name for layer in ssd.build_ssd(cfg, num_classes=4).layers}
    for expected in ("Conv2d_0", "Conv2d_1_depthwise", "Conv2d_11_pointwise", "Conv2d_13_pointwise", "extra_4"):
        assert expected in names
