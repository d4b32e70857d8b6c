"""Layer geometry of SSD MobileNet v1: sizes and padding amounts per layer.

Pure Python, no TensorFlow, so that the config loader, the padding audit
and the tests share one description of the network. Sizes are one spatial
axis at a time, in pixels of that layer's input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# MobileNet v1 (Howard et al. 2017, Table 1): (stride, depth) of the
# depthwise-separable blocks Conv2d_1 .. Conv2d_13. Conv2d_0 is a full
# 3x3 stride-2 convolution of depth 32.
MOBILENET_V1_BLOCKS: tuple[tuple[int, int], ...] = (
    (1, 64),
    (2, 128),
    (1, 128),
    (2, 256),
    (1, 256),
    (2, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (2, 1024),
    (1, 1024),
)
STEM_DEPTH = 32
# Depths of the four SSD extra layers of the reference BSTLD config, before
# the width multiplier. Each is a 1x1 conv to half the depth, then a 3x3
# stride-2 conv to this depth.
EXTRA_LAYER_DEPTHS: tuple[int, ...] = (512, 256, 256, 128)
FEATURE_LAYERS: tuple[str, ...] = (
    "Conv2d_11_pointwise",
    "Conv2d_13_pointwise",
    "extra_1",
    "extra_2",
    "extra_3",
    "extra_4",
)


@dataclass(frozen=True)
class ConvSpec:
    """Kernel and stride of one padded convolution layer."""

    name: str
    kernel: int
    stride: int
    depthwise: bool = False


@dataclass(frozen=True)
class AxisGeometry:
    """Sizes and pad amounts of one layer along one axis."""

    input_size: int
    output_size: int
    pad_before: int
    pad_after: int
    # Padding rows (or columns) after the input that no window reads.
    unconsumed_after: int

    @property
    def uneven(self) -> bool:
        """True when the padding actually read differs between the two sides."""
        return self.pad_before != self.pad_after - self.unconsumed_after


def scaled_depth(depth: int, width_multiplier: float, min_depth: int) -> int:
    """Apply the MobileNet width multiplier with its minimum depth."""
    return max(int(depth * width_multiplier), min_depth)


def same_output_size(n: int, stride: int) -> int:
    return math.ceil(n / stride)


def tf_same_padding(n: int, kernel: int, stride: int) -> tuple[int, int]:
    """Return TensorFlow SAME padding (before, after) along one axis.

    total = max((ceil(n / s) - 1) * s + k - n, 0), split as floor(total / 2)
    before and the rest after. For n = 6, k = 3, s = 2 this is (0, 1).
    """
    total = max((same_output_size(n, stride) - 1) * stride + kernel - n, 0)
    return total // 2, total - total // 2


def explicit_padding(kernel: int) -> tuple[int, int]:
    """Return PyTorch-style padding: (k - 1) / 2 on each side."""
    half = (kernel - 1) // 2
    return half, half


def axis_geometry(n: int, kernel: int, stride: int, mode: str, alignment: str) -> AxisGeometry:
    """Compute sizes and pad amounts of one layer along one axis.

    `mode` is a padding mode of `blindspots.config.schema.PADDING_MODES`.
    `alignment` applies to modes other than `tf_same`, `zero_explicit` and
    `valid`: "tf" places the padding as TensorFlow SAME does, "explicit"
    puts (k - 1) / 2 on both sides.
    """
    if mode == "valid":
        before, after = 0, 0
    elif mode == "tf_same":
        before, after = tf_same_padding(n, kernel, stride)
    elif mode == "zero_explicit":
        before, after = explicit_padding(kernel)
    elif alignment == "explicit":
        before, after = explicit_padding(kernel)
    else:
        before, after = tf_same_padding(n, kernel, stride)

    padded = n + before + after
    output = (padded - kernel) // stride + 1 if padded >= kernel else 0
    last_read = (output - 1) * stride + kernel if output > 0 else 0
    unconsumed = max(0, min(after, padded - last_read))
    return AxisGeometry(n, output, before, after, unconsumed)


def mobilenet_ssd_layers() -> list[ConvSpec]:
    """List the backbone and extra layers of SSD MobileNet v1 in execution order.

    The 3x3 stride-1 box predictors are not listed: they keep each feature
    map's size and, under TF SAME, pad it evenly.
    """
    layers = [ConvSpec("Conv2d_0", 3, 2)]
    for index, (stride, _) in enumerate(MOBILENET_V1_BLOCKS, start=1):
        layers.append(ConvSpec(f"Conv2d_{index}_depthwise", 3, stride, depthwise=True))
        layers.append(ConvSpec(f"Conv2d_{index}_pointwise", 1, 1))
    for index in range(1, len(EXTRA_LAYER_DEPTHS) + 1):
        layers.append(ConvSpec(f"extra_{index}_1x1", 1, 1))
        layers.append(ConvSpec(f"extra_{index}", 3, 2))
    return layers


@dataclass(frozen=True)
class LayerGeometry:
    spec: ConvSpec
    height: AxisGeometry
    width: AxisGeometry


class GeometryError(ValueError):
    """The input is too small for the network under the chosen padding."""


def _check_pad_fits(mode: str, geometry: AxisGeometry) -> bool:
    # tf.pad REFLECT needs pad <= n - 1 (the edge pixel is not repeated);
    # SYMMETRIC and wrap-around need pad <= n; zeros and edge copies fit any n.
    largest = max(geometry.pad_before, geometry.pad_after)
    if mode == "reflect":
        return largest <= geometry.input_size - 1
    if mode in ("symmetric", "circular"):
        return largest <= geometry.input_size
    return True


def trace_network(
    input_size: tuple[int, int],
    mode: str,
    alignment: str,
) -> list[LayerGeometry]:
    """Follow an input of (height, width) through every layer.

    Raises GeometryError when some layer would get an empty output or a
    padding that the mode cannot produce from the layer's input.
    """
    height, width = input_size
    traced: list[LayerGeometry] = []
    for spec in mobilenet_ssd_layers():
        h_geo = axis_geometry(height, spec.kernel, spec.stride, mode, alignment)
        w_geo = axis_geometry(width, spec.kernel, spec.stride, mode, alignment)
        for axis, geo in (("height", h_geo), ("width", w_geo)):
            # A backbone stride-2 layer on a 1-pixel map no longer down-samples,
            # so the feature maps would lose their stride-16 and stride-32 meaning.
            if spec.stride == 2 and spec.name.startswith("Conv2d_") and geo.input_size < 2:
                raise GeometryError(
                    f"layer {spec.name} gets {axis} {geo.input_size}, but a stride-2 backbone layer needs at least 2"
                )
            if geo.output_size < 1 or not _check_pad_fits(mode, geo):
                raise GeometryError(
                    f"layer {spec.name} gets {axis} {geo.input_size}, too small for "
                    f"kernel {spec.kernel}, stride {spec.stride} with padding '{mode}'"
                )
        traced.append(LayerGeometry(spec, h_geo, w_geo))
        height, width = h_geo.output_size, w_geo.output_size
    return traced


def feature_map_sizes(input_size: tuple[int, int], mode: str, alignment: str) -> list[tuple[int, int]]:
    """Return (height, width) of the six SSD feature maps."""
    sizes = {}
    for layer in trace_network(input_size, mode, alignment):
        sizes[layer.spec.name] = (layer.height.output_size, layer.width.output_size)
    return [sizes[name] for name in FEATURE_LAYERS]


def minimum_input_side(mode: str, alignment: str, upper: int = 4096) -> int:
    """Return the smallest square input side that the network accepts."""
    for side in range(1, upper + 1):
        try:
            trace_network((side, side), mode, alignment)
        except GeometryError:
            continue
        return side
    raise GeometryError(f"no input side up to {upper} fits padding '{mode}'")


def stride2_count() -> int:
    """Return how many stride-2 layers the backbone has (5 for MobileNet v1)."""
    return 1 + sum(1 for stride, _ in MOBILENET_V1_BLOCKS if stride == 2)


def even_padding_sides(n: int, depth: int | None = None, count: int = 2) -> list[int]:
    """Return the `count` input sides nearest to n that pad evenly under TF SAME.

    With k = 3, s = 2 a layer pads evenly iff its input is odd, so all of
    `depth` successive down-samplings are symmetric iff n = m * 2^depth + 1.
    The default depth is the backbone's 5 stride-2 layers, which gives 193
    and 321 for 192 and 320. The four SSD extra layers would need depth 9.
    """
    if depth is None:
        depth = stride2_count()
    period = 2**depth
    m = max(1, (n - 1) // period)
    candidates = [step * period + 1 for step in range(max(1, m - count), m + count + 2)]
    candidates.sort(key=lambda side: (abs(side - n), side))
    return sorted(candidates[:count])
