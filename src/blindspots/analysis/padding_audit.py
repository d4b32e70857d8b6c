"""Padding audit: where every layer pads, and whether it pads both sides alike.

The audit reads either the project's SSD MobileNet v1 description
(`geometry.mobilenet_ssd_layers`) or any functional or Sequential tf_keras
model, and returns one row per windowed layer (convolution or pooling).
Sizes are pixels of the layer's input along one axis. "Before" is the top
or left side and "after" the bottom or right side.

A layer is uneven along an axis when the padding its windows actually read
differs between the two sides (`geometry.AxisGeometry.uneven`). For k = 3,
s = 2 under TensorFlow SAME that happens exactly when the input is even:
the layer pads 0 before and 1 after.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from blindspots import runinfo
from blindspots.modeling import geometry
from blindspots.modeling.geometry import AxisGeometry

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

AXES = ("height", "width")
# How far from the input size the search for evenly padding sizes goes, per
# side. It covers several periods of 512 px, the spacing of evenly padding
# sizes for the nine stride-2 layers of SSD MobileNet v1.
DEFAULT_SEARCH_DISTANCE = 2048

TABLE_COLUMNS = (
    "layer",
    "type",
    "kernel_h",
    "kernel_w",
    "stride_h",
    "stride_w",
    "in_h",
    "in_w",
    "out_h",
    "out_w",
    "pad_top",
    "pad_bottom",
    "pad_left",
    "pad_right",
    "unconsumed_bottom",
    "unconsumed_right",
    "unread_bottom",
    "unread_right",
    "uneven_h",
    "uneven_w",
)


class AuditError(ValueError):
    """The audit cannot read the model, or its reading disagrees with TensorFlow."""


@dataclass(frozen=True)
class WindowLayer:
    """A convolution or pooling layer, reduced to the fields that set its padding.

    `kernel` is the effective (dilated) window, (height, width). `padding` is
    a mode of `schema.PADDING_MODES`: Keras 'same' becomes `tf_same` and
    'valid' stays `valid`. `extra_pads` is explicit zero padding,
    ((top, bottom), (left, right)), from ZeroPadding2D layers that feed this
    layer directly. The audit folds it into this layer's row.
    """

    name: str
    layer_type: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: str = "tf_same"
    alignment: str = "tf"
    extra_pads: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))


@dataclass(frozen=True)
class EvenSizes:
    """The input sizes nearest to `size` along one axis at which no layer pads unevenly.

    `below` and `above` are None when no such size lies within the search distance.
    """

    axis: str
    size: int
    already_even: bool
    below: int | None
    above: int | None


# ---------------------------------------------------------------------------
# One layer along one axis


def padded_geometry(n: int, kernel: int, stride: int, before: int, after: int) -> AxisGeometry:
    """Compute output size and unconsumed padding of a VALID window pass over a padded axis.

    `n` is the unpadded input size, `before` and `after` the padding in pixels.
    The output size is 0 when the padded axis is shorter than the kernel.
    """
    padded = n + before + after
    output = (padded - kernel) // stride + 1 if padded >= kernel else 0
    last_read = (output - 1) * stride + kernel if output > 0 else 0
    unconsumed = max(0, min(after, padded - last_read))
    return AxisGeometry(n, output, before, after, unconsumed)


def unread_input(geo: AxisGeometry, kernel: int, stride: int) -> int:
    """Return how many input pixels at the far end no window reads.

    VALID padding of an even input with k = 3, s = 2 leaves the last row
    unread, which biases a network much as uneven padding does.
    """
    padded = geo.input_size + geo.pad_before + geo.pad_after
    last_read = (geo.output_size - 1) * stride + kernel if geo.output_size > 0 else 0
    return max(0, padded - last_read - geo.pad_after)


def window_axis_geometry(layer: WindowLayer, axis: int, n: int) -> AxisGeometry:
    """Compute the geometry of `layer` along `axis` (0 height, 1 width) for an input of n pixels.

    `n` is the size before any folded ZeroPadding2D. The layer's own padding
    is computed on the size after it, as TensorFlow does.
    """
    extra_before, extra_after = layer.extra_pads[axis]
    kernel, stride = layer.kernel[axis], layer.stride[axis]
    own = geometry.axis_geometry(n + extra_before + extra_after, kernel, stride, layer.padding, layer.alignment)
    return padded_geometry(n, kernel, stride, extra_before + own.pad_before, extra_after + own.pad_after)


def pads_fit(mode: str, geo: AxisGeometry) -> bool:
    """Return whether `mode` can produce the padding of `geo` from its input.

    tf.pad REFLECT needs pad <= n - 1 because the edge pixel is not
    repeated. SYMMETRIC and wrap-around need pad <= n. Zeros and edge
    copies fit any n.
    """
    largest = max(geo.pad_before, geo.pad_after)
    if mode == "reflect":
        return largest <= geo.input_size - 1
    if mode in ("symmetric", "circular"):
        return largest <= geo.input_size
    return True


# ---------------------------------------------------------------------------
# The project's network


def network_window_layers(mode: str, alignment: str) -> list[WindowLayer]:
    """Describe every padded layer of SSD MobileNet v1 under one padding mode, in execution order."""
    layers = []
    for spec in geometry.mobilenet_ssd_layers():
        layer_type = "DepthwiseConv2D" if spec.depthwise else "Conv2D"
        kernel, stride = (spec.kernel, spec.kernel), (spec.stride, spec.stride)
        layers.append(WindowLayer(spec.name, layer_type, kernel, stride, mode, alignment))
    return layers


def audit_network(input_size: tuple[int, int], mode: str = "tf_same", alignment: str = "tf") -> pd.DataFrame:
    """Audit SSD MobileNet v1, including the four SSD extra layers, at input (height, width) px.

    Returns a pandas DataFrame with the columns of `TABLE_COLUMNS`, one row
    per layer. Raises `geometry.GeometryError` when the input is too small for
    the network under `mode`.
    """
    traced = geometry.trace_network(input_size, mode, alignment)
    layers = network_window_layers(mode, alignment)
    rows = []
    for layer, trace in zip(layers, traced):
        geos = (window_axis_geometry(layer, 0, trace.height.input_size), window_axis_geometry(layer, 1, trace.width.input_size))
        if geos != (trace.height, trace.width):
            raise AuditError(f"layer {layer.name}: audit geometry {geos} differs from geometry.trace_network {trace}")
        rows.append(_table_row(layer, geos))
    return _table(rows)


def nearest_even_sizes_network(
    input_size: tuple[int, int],
    mode: str = "tf_same",
    alignment: str = "tf",
    last_layer: str | None = None,
    max_distance: int = DEFAULT_SEARCH_DISTANCE,
) -> dict[str, EvenSizes]:
    """Find, per axis, the nearest input sizes below and above at which SSD MobileNet v1 pads evenly.

    Every layer must pad evenly, or only the layers up to and including
    `last_layer` when it is given (for example "Conv2d_13_pointwise" for the
    backbone alone). The other axis stays at its size in `input_size`.
    Sizes the network rejects (`geometry.GeometryError`) are skipped.
    """
    names = [spec.name for spec in geometry.mobilenet_ssd_layers()]
    if last_layer is not None and last_layer not in names:
        raise ValueError(f"last_layer '{last_layer}' is not a layer of SSD MobileNet v1; valid names: {', '.join(names)}")
    count = len(names) if last_layer is None else names.index(last_layer) + 1

    def trace_axis(axis: int, n: int) -> list[AxisGeometry] | None:
        size = (n, input_size[1]) if axis == 0 else (input_size[0], n)
        try:
            traced = geometry.trace_network(size, mode, alignment)
        except geometry.GeometryError:
            return None
        return [layer.height if axis == 0 else layer.width for layer in traced[:count]]

    return _nearest_even_sizes(trace_axis, input_size, max_distance)


# ---------------------------------------------------------------------------
# Any tf_keras model


@dataclass
class _GraphNode:
    """One Keras layer as a step of spatial-size propagation.

    `op` is one of the following.
    - input, window, pad, crop, upsample: what the names say.
    - same_size: the output is as big as every input (activations, batch
      norm, Add, Concatenate).
    - alias: a nested model's input or output, which passes its tensor on.
    - global: a 1 x 1 output.
    - no_spatial: the output is not a 4-D feature map.
    - opaque: the layer changes the size in a way the audit does not model.
    """

    name: str
    layer_type: str
    op: str
    inputs: tuple[str, ...]
    window: WindowLayer | None = None
    amounts: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))
    factor: tuple[int, int] = (1, 1)
    built_input: tuple[int, int] | None = None
    built_output: tuple[int, int] | None = None


def _spatial(shape: Any) -> tuple[int, int] | None:
    """Return (height, width) of an NHWC shape, or None for another rank or an unknown size."""
    if isinstance(shape, list):
        shape = shape[0] if shape else None
    if shape is None or len(shape) != 4 or shape[1] is None or shape[2] is None:
        return None
    return int(shape[1]), int(shape[2])


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    first, second = value
    return int(first), int(second)


def _keras_window(layer: Any, name: str) -> WindowLayer:
    """Read kernel, stride, dilation and padding from a Keras convolution or pooling layer."""
    layer_type = type(layer).__name__
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise AuditError(f"layer '{name}' ({layer_type}) uses data_format {layer.data_format}; the audit reads NHWC only")
    if hasattr(layer, "padding_mode"):
        # The project's PaddedConv2D and PaddedDepthwiseConv2D pad with a
        # schema padding mode and then convolve with VALID.
        size = _pair(layer.kernel_size)
        return WindowLayer(name, layer_type, size, _pair(layer.strides), layer.padding_mode, layer.alignment)
    if hasattr(layer, "pool_size"):
        size, dilation = _pair(layer.pool_size), (1, 1)
    else:
        size, dilation = _pair(layer.kernel_size), _pair(getattr(layer, "dilation_rate", 1))
    kernel = tuple(d * (k - 1) + 1 for k, d in zip(size, dilation))
    padding = str(layer.padding).lower()
    if padding not in ("same", "valid"):
        raise AuditError(f"layer '{name}' ({layer_type}) has padding '{layer.padding}'; the audit reads 'same' and 'valid'")
    mode = "tf_same" if padding == "same" else "valid"
    return WindowLayer(name, layer_type, kernel, _pair(layer.strides), mode)


def _classify(layer: Any, name: str, inputs: tuple[str, ...]) -> _GraphNode:
    import tf_keras

    from blindspots.modeling.padding import CUSTOM_OBJECTS

    layers = tf_keras.layers
    layer_type = type(layer).__name__
    built_input, built_output = _spatial(layer.input_shape), _spatial(layer.output_shape)
    node = _GraphNode(name, layer_type, "opaque", inputs, built_input=built_input, built_output=built_output)
    if isinstance(layer, layers.InputLayer):
        node.op = "input"
    elif isinstance(layer, (layers.Conv2DTranspose, layers.Conv1D, layers.Conv3D)):
        node.op = "opaque"
    elif isinstance(layer, tuple(CUSTOM_OBJECTS.values())) or isinstance(
        layer, (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D, layers.MaxPooling2D, layers.AveragePooling2D)
    ):
        node.op, node.window = "window", _keras_window(layer, name)
    elif isinstance(layer, layers.ZeroPadding2D):
        node.op, node.amounts = "pad", tuple(_pair(side) for side in layer.padding)
    elif isinstance(layer, layers.Cropping2D):
        node.op, node.amounts = "crop", tuple(_pair(side) for side in layer.cropping)
    elif isinstance(layer, layers.UpSampling2D):
        node.op, node.factor = "upsample", _pair(layer.size)
    elif built_output is None:
        node.op = "no_spatial"
    elif isinstance(layer, (layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D)):
        node.op = "global"
    else:
        shapes = layer.input_shape if isinstance(layer.input_shape, list) else [layer.input_shape]
        if all(_spatial(shape) == built_output for shape in shapes):
            node.op = "same_size"
    if node.op in ("pad", "crop", "upsample") and layer.data_format != "channels_last":
        raise AuditError(f"layer '{name}' ({layer_type}) uses data_format {layer.data_format}; the audit reads NHWC only")
    return node


def _inbound_names(layer: Any, name: str, prefix: str) -> tuple[str, ...]:
    nodes = layer.inbound_nodes
    if len(nodes) != 1:
        raise AuditError(f"layer '{name}' is called {len(nodes)} times; the audit follows layers that run exactly once")
    inbound = nodes[0].inbound_layers
    if not isinstance(inbound, list):
        inbound = [inbound]
    return tuple(prefix + source.name for source in inbound)


def _add_model_nodes(model: Any, prefix: str, outer_inputs: tuple[str, ...] | None, nodes: list[_GraphNode]) -> str:
    """Append the nodes of `model` to `nodes` and return the name of its output node.

    A nested model is flattened. Its input layer becomes an alias node fed by
    `outer_inputs`, and its layer names get the prefix `<model name>/`.
    """
    import tf_keras

    if not model.inputs or len(model.inputs) != 1 or len(model.outputs) < 1:
        raise AuditError(
            f"model '{model.name}' must be a built functional or Sequential model with one image input; "
            "build it on tf_keras.Input((height, width, channels)) first"
        )
    if outer_inputs is not None and len(model.outputs) != 1:
        raise AuditError(f"nested model '{model.name}' has {len(model.outputs)} outputs; the audit flattens nested models with one output")

    input_layer = model.inputs[0].node.layer
    seen: set[str] = set()
    for layer in [input_layer, *model.layers]:
        name = prefix + layer.name
        if name in seen:
            continue
        seen.add(name)
        if isinstance(layer, tf_keras.layers.InputLayer):
            spatial = _spatial(layer.output_shape)
            if outer_inputs is None:
                nodes.append(_GraphNode(name, "InputLayer", "input", (), built_input=spatial, built_output=spatial))
            else:
                nodes.append(_GraphNode(name, "InputLayer", "alias", outer_inputs, built_input=spatial, built_output=spatial))
            continue
        inputs = _inbound_names(layer, name, prefix)
        if isinstance(layer, tf_keras.Model):
            inner_output = _add_model_nodes(layer, f"{name}/", inputs, nodes)
            spatial = _spatial(layer.output_shape)
            nodes.append(_GraphNode(name, type(layer).__name__, "alias", (inner_output,), built_output=spatial))
            continue
        nodes.append(_classify(layer, name, inputs))
    return prefix + model.outputs[0].node.layer.name


def _keras_graph(model: Any) -> list[_GraphNode]:
    """Flatten `model` into size-propagation nodes, ordered so that every node follows its inputs."""
    nodes: list[_GraphNode] = []
    _add_model_nodes(model, "", None, nodes)
    by_name = {node.name: node for node in nodes}
    ordered: list[_GraphNode] = []
    placed: set[str] = set()
    pending = list(nodes)
    while pending:
        ready = [node for node in pending if all(name in placed for name in node.inputs)]
        if not ready:
            missing = sorted({name for node in pending for name in node.inputs if name not in by_name})
            raise AuditError(f"model '{model.name}': cannot order layers, inputs not found: {missing}")
        for node in ready:
            ordered.append(node)
            placed.add(node.name)
        pending = [node for node in pending if node.name not in placed]
    return ordered


@dataclass(frozen=True)
class _Tensor:
    """Size of a feature map along one axis, with ZeroPadding2D not yet applied.

    `pad_nodes` lists the ZeroPadding2D layers that added `before` and
    `after`. A window layer folds them into its own row.
    """

    size: int | None
    before: int = 0
    after: int = 0
    pad_nodes: tuple[str, ...] = ()

    @property
    def realized(self) -> int | None:
        return None if self.size is None else self.size + self.before + self.after


@dataclass(frozen=True)
class _AxisTrace:
    """Geometry along one axis of every windowed layer, and of every ZeroPadding2D not folded into one.

    `pads` maps the last ZeroPadding2D of a chain to the chain's label and
    geometry. `inputs` is the size of the tensor that enters each
    windowed layer, after any ZeroPadding2D.
    """

    windows: dict[str, AxisGeometry]
    pads: dict[str, tuple[str, AxisGeometry]]
    inputs: dict[str, int]


def _propagate(nodes: list[_GraphNode], axis: int, n: int, built_size: int) -> _AxisTrace | None:
    """Follow an input of n pixels along `axis` through the graph.

    Returns None when the model cannot take n: a window gets an empty
    output, a mirror padding exceeds its input, or a merge gets maps of
    different sizes. An opaque layer keeps its built size only for
    n == built_size. For any other n the size after it is unknown, so the
    result is None.
    """
    tensors: dict[str, _Tensor] = {}
    windows: dict[str, AxisGeometry] = {}
    pads: dict[str, tuple[str, AxisGeometry]] = {}
    inputs: dict[str, int] = {}

    def realize(tensor: _Tensor) -> int | None:
        # A ZeroPadding2D read by anything but a window layer gets its own row.
        if tensor.pad_nodes and tensor.size is not None:
            geo = AxisGeometry(tensor.size, tensor.realized, tensor.before, tensor.after, 0)
            pads[tensor.pad_nodes[-1]] = ("+".join(tensor.pad_nodes), geo)
        return tensor.realized

    for node in nodes:
        sources = [tensors[name] for name in node.inputs]
        if node.op == "input":
            tensors[node.name] = _Tensor(n)
        elif node.op == "alias":
            (tensors[node.name],) = sources
        elif node.op == "no_spatial" or any(source.size is None for source in sources):
            tensors[node.name] = _Tensor(None)
        elif node.op == "pad":
            (source,) = sources
            before, after = node.amounts[axis]
            tensors[node.name] = _Tensor(source.size, source.before + before, source.after + after, (*source.pad_nodes, node.name))
        elif node.op == "window":
            (source,) = sources
            geo = window_axis_geometry(_fold(node.window, axis, source), axis, source.size)
            if geo.output_size < 1 or not pads_fit(node.window.padding, geo):
                return None
            windows[node.name] = geo
            inputs[node.name] = source.realized
            tensors[node.name] = _Tensor(geo.output_size)
        else:
            sizes = {realize(source) for source in sources}
            if len(sizes) != 1:
                return None
            (size,) = sizes
            if node.op == "crop":
                size = size - sum(node.amounts[axis])
            elif node.op == "upsample":
                size = size * node.factor[axis]
            elif node.op == "global":
                size = 1
            elif node.op == "opaque":
                if n != built_size:
                    return None
                size = node.built_output[axis]
            if size < 1:
                return None
            tensors[node.name] = _Tensor(size)
    return _AxisTrace(windows, pads, inputs)


def _fold(layer: WindowLayer, axis: int, source: _Tensor) -> WindowLayer:
    """Return `layer` with the pending ZeroPadding2D of `source` as its extra padding along `axis`."""
    pads = list(layer.extra_pads)
    pads[axis] = (source.before, source.after)
    return WindowLayer(layer.name, layer.layer_type, layer.kernel, layer.stride, layer.padding, layer.alignment, tuple(pads))


def keras_model_at_input_size(model: Any, input_size: tuple[int, int]) -> Any:
    """Return `model` itself when its input is already (height, width) px, else a copy rebuilt from its config at that size.

    The copy has fresh weights, which the audit does not read.
    """
    import tf_keras

    from blindspots.modeling.padding import CUSTOM_OBJECTS

    if not model.inputs or len(model.inputs) != 1:
        raise AuditError(f"model '{model.name}' must be a built functional or Sequential model with one image input")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4:
        raise AuditError(f"model '{model.name}' input has shape {shape}; expected (batch, height, width, channels)")
    if shape[1:3] == tuple(input_size):
        return model

    config = model.get_config()
    input_configs = [layer for layer in config["layers"] if layer.get("class_name") == "InputLayer"]
    if len(input_configs) == 1:
        layer_config = input_configs[0]["config"]
    elif isinstance(model, tf_keras.Sequential) and "batch_input_shape" in config["layers"][0]["config"]:
        layer_config = config["layers"][0]["config"]
    else:
        raise AuditError(f"model '{model.name}': found {len(input_configs)} input layers in its config; expected one")
    layer_config["batch_input_shape"] = (None, int(input_size[0]), int(input_size[1]), shape[3])
    model_class = tf_keras.Sequential if isinstance(model, tf_keras.Sequential) else tf_keras.Model
    try:
        return model_class.from_config(config, custom_objects=CUSTOM_OBJECTS)
    except (ValueError, TypeError) as error:
        raise AuditError(
            f"model '{model.name}' cannot be rebuilt at input {input_size[0]}x{input_size[1]}: {error}. "
            "Audit it at the input size it was built with."
        ) from error


def audit_keras_model(model: Any) -> pd.DataFrame:
    """Audit every convolution and pooling layer of a built tf_keras model at its input size.

    Reads Conv2D, DepthwiseConv2D, SeparableConv2D, MaxPooling2D,
    AveragePooling2D, the project's padded convolutions and ZeroPadding2D.
    A ZeroPadding2D that feeds a window layer is folded into that layer's
    row. Nested models are flattened, with names `<model>/<layer>`. Returns
    a pandas DataFrame with the columns of `TABLE_COLUMNS`.

    Raises AuditError when the model has no fixed input size, or when the
    sizes the audit computes differ from the shapes TensorFlow built.
    """
    nodes = _keras_graph(model)
    built = _built_input_size(model)
    traces = [_propagate(nodes, axis, built[axis], built[axis]) for axis in (0, 1)]
    if traces[0] is None or traces[1] is None:
        raise AuditError(f"model '{model.name}': the audit cannot follow sizes through the model at its own input {built}")

    rows = []
    for node in nodes:
        if node.name in traces[0].windows:
            geos = (traces[0].windows[node.name], traces[1].windows[node.name])
            _check_against_built(node, (traces[0].inputs[node.name], traces[1].inputs[node.name]), geos)
            rows.append(_table_row(node.window, geos))
        elif node.name in traces[0].pads:
            label, height = traces[0].pads[node.name]
            _, width = traces[1].pads[node.name]
            rows.append(_table_row(WindowLayer(label, "ZeroPadding2D", (1, 1), (1, 1), "valid"), (height, width)))
    if not rows:
        logger.warning("model '%s' has no convolution or pooling layer to audit", model.name)
    return _table(rows)


def _built_input_size(model: Any) -> tuple[int, int]:
    built = _spatial(model.inputs[0].shape)
    if built is None:
        raise AuditError(
            f"model '{model.name}' has input shape {tuple(model.inputs[0].shape)}; the audit needs a fixed height "
            "and width, so rebuild it with keras_model_at_input_size"
        )
    return built


def _check_against_built(node: _GraphNode, input_sizes: tuple[int, int], geos: tuple[AxisGeometry, AxisGeometry]) -> None:
    """Raise AuditError when the audit's sizes for a layer differ from the shapes TensorFlow built."""
    output = (geos[0].output_size, geos[1].output_size)
    if node.built_input is not None and input_sizes != node.built_input:
        raise AuditError(f"layer '{node.name}': the audit expects input {input_sizes}, TensorFlow built {node.built_input}")
    if node.built_output is not None and output != node.built_output:
        raise AuditError(f"layer '{node.name}': the audit expects output {output}, TensorFlow built {node.built_output}")


def nearest_even_sizes_keras(model: Any, max_distance: int = DEFAULT_SEARCH_DISTANCE) -> dict[str, EvenSizes] | None:
    """Find, per axis, the nearest input sizes below and above at which `model` pads evenly in every layer.

    Sizes are propagated through the layer graph without rebuilding the
    model. Returns None, with a logged warning, when the model contains a
    layer that changes the spatial size in a way the audit does not model
    (for example Conv2DTranspose), because sizes after it are unknown.
    """
    nodes = _keras_graph(model)
    opaque = [node.name for node in nodes if node.op == "opaque"]
    if opaque:
        logger.warning("model '%s': cannot search input sizes past layers %s, which change the size in an unmodelled way", model.name, opaque)
        return None
    built = _built_input_size(model)

    def trace_axis(axis: int, n: int) -> list[AxisGeometry] | None:
        trace = _propagate(nodes, axis, n, built[axis])
        if trace is None:
            return None
        return [*trace.windows.values(), *(geo for _, geo in trace.pads.values())]

    return _nearest_even_sizes(trace_axis, built, max_distance)


# ---------------------------------------------------------------------------
# Search, probe, table and files


def _nearest_even_sizes(
    trace_axis: Callable[[int, int], list[AxisGeometry] | None],
    input_size: tuple[int, int],
    max_distance: int,
) -> dict[str, EvenSizes]:
    """Search each axis outwards from the input for sizes that the model accepts and pads evenly everywhere."""

    def is_even(axis: int, n: int) -> bool:
        traced = trace_axis(axis, n)
        return traced is not None and not any(geo.uneven for geo in traced)

    result = {}
    for axis, axis_name in enumerate(AXES):
        n = input_size[axis]
        below = next((m for m in range(n - 1, max(0, n - max_distance - 1), -1) if is_even(axis, m)), None)
        above = next((m for m in range(n + 1, n + max_distance + 1) if is_even(axis, m)), None)
        result[axis_name] = EvenSizes(axis_name, n, is_even(axis, n), below, above)
    return result


def probe_same_padding(n: int, kernel: int, stride: int) -> tuple[int, int]:
    """Measure the padding that TensorFlow's SAME convolution reads on each side of an axis of n px.

    Convolves positions 1..n, shape [1, n, 1, 1], with an identity kernel of
    `kernel` taps, so that each output channel copies one tap and a padded tap
    reads 0. Returns (zeros before the first window's input, zeros after the
    last window's input). Both are padding that windows read, so they match
    pad_before and pad_after - unconsumed_after of the audit.
    """
    import tensorflow as tf

    positions = tf.reshape(tf.range(1, n + 1, dtype=tf.float32), [1, n, 1, 1])
    identity = tf.reshape(tf.eye(kernel, dtype=tf.float32), [kernel, 1, 1, kernel])
    patches = tf.nn.conv2d(positions, identity, strides=[1, stride, 1, 1], padding="SAME").numpy()[0, :, 0, :]
    first, last = patches[0], patches[-1]
    before = int(np.argmax(first > 0))
    after = int(np.argmax(last[::-1] > 0))
    return before, after


def _table_row(layer: WindowLayer, geos: tuple[AxisGeometry, AxisGeometry]) -> dict[str, Any]:
    height, width = geos
    return {
        "layer": layer.name,
        "type": layer.layer_type,
        "kernel_h": layer.kernel[0],
        "kernel_w": layer.kernel[1],
        "stride_h": layer.stride[0],
        "stride_w": layer.stride[1],
        "in_h": height.input_size,
        "in_w": width.input_size,
        "out_h": height.output_size,
        "out_w": width.output_size,
        "pad_top": height.pad_before,
        "pad_bottom": height.pad_after,
        "pad_left": width.pad_before,
        "pad_right": width.pad_after,
        "unconsumed_bottom": height.unconsumed_after,
        "unconsumed_right": width.unconsumed_after,
        "unread_bottom": unread_input(height, layer.kernel[0], layer.stride[0]),
        "unread_right": unread_input(width, layer.kernel[1], layer.stride[1]),
        "uneven_h": height.uneven,
        "uneven_w": width.uneven,
    }


def _table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def uneven_layers(table: pd.DataFrame) -> list[str]:
    """Return the names of the layers that pad unevenly along either axis, in table order."""
    return [str(name) for name in table.loc[table["uneven_h"] | table["uneven_w"], "layer"]]


def describe_even_sizes(sizes: dict[str, EvenSizes] | None, scope: str = "every layer") -> str:
    """Format the nearest evenly padding input sizes as one sentence about `scope`."""
    if sizes is None:
        return f"No input size recommendation for {scope}: the model has a layer whose output size the audit cannot follow."
    parts = []
    for even in sizes.values():
        below = "none" if even.below is None else str(even.below)
        above = "none" if even.above is None else str(even.above)
        state = "pads evenly" if even.already_even else "pads unevenly"
        parts.append(f"{even.axis} {even.size} {state}, nearest even sizes {below} below and {above} above")
    return f"Input sizes at which {scope} pads evenly: " + "; ".join(parts) + "."


def markdown_table(table: pd.DataFrame) -> str:
    """Format a DataFrame as a GitHub Markdown table, booleans as yes/no."""
    header = "| " + " | ".join(str(column) for column in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    lines = [header, rule]
    for row in table.itertuples(index=False):
        cells = [_markdown_cell(value) for value in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _markdown_cell(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    return str(value)


def audit_markdown(table: pd.DataFrame, title: str, recommendations: Sequence[str]) -> str:
    """Compose the Markdown audit: title, uneven layers, recommendation sentences and the full table."""
    flagged = uneven_layers(table)
    lines = [f"# {title}", ""]
    lines.append(f"{len(flagged)} of {len(table)} layers pad unevenly in at least one axis.")
    lines.append("")
    for column, axis in (("uneven_h", "height"), ("uneven_w", "width")):
        names = ", ".join(str(name) for name in table.loc[table[column], "layer"]) or "none"
        lines.append(f"- uneven in {axis}: {names}")
    lines.append("")
    lines += [f"{sentence}\n" for sentence in recommendations]
    lines += [markdown_table(table), ""]
    return "\n".join(lines)


def write_audit(table: pd.DataFrame, out_dir: Path | str, title: str, recommendations: Sequence[str]) -> tuple[Path, Path]:
    """Write `padding_audit.csv` and `padding_audit.md` into `out_dir` atomically and return both paths."""
    out_dir = Path(out_dir)
    csv_path, md_path = out_dir / "padding_audit.csv", out_dir / "padding_audit.md"
    runinfo.write_text(csv_path, table.to_csv(index=False))
    runinfo.write_text(md_path, audit_markdown(table, title, recommendations))
    logger.info("wrote %s and %s", csv_path, md_path)
    return csv_path, md_path


def network_title(input_size: Sequence[int], mode: str, alignment: str) -> str:
    return f"Padding audit: SSD MobileNet v1, input {input_size[0]}x{input_size[1]} px, padding {mode}, alignment {alignment}"


BACKBONE_LAST_LAYER = "Conv2d_13_pointwise"


def audit_reference_network(input_size: tuple[int, int], mode: str, alignment: str) -> tuple[pd.DataFrame, str, list[str]]:
    """Audit the project network and recommend even sizes for the whole network and for the backbone.

    Returns (table, title, recommendation sentences).
    """
    table = audit_network(input_size, mode, alignment)
    recommendations = [
        describe_even_sizes(nearest_even_sizes_network(input_size, mode, alignment)),
        describe_even_sizes(
            nearest_even_sizes_network(input_size, mode, alignment, last_layer=BACKBONE_LAST_LAYER),
            scope=f"the backbone (through {BACKBONE_LAST_LAYER})",
        ),
    ]
    return table, network_title(input_size, mode, alignment), recommendations
