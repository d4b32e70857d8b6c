"""Activation maps that show where padding biases a CNN: constant inputs and data means.

Two analyses of a trained detector.

- Constant-input maps. The model gets an image of one colour everywhere,
  so without padding every layer's output would be constant across space.
  Whatever varies towards the borders comes from the padding. The zero
  input is pixel value 0 in the model's input space (0-255), which the
  detector's own rescaling maps to -1, so it is a black image. Feeding 0
  after the rescaling instead would need a second model without the
  rescaling layer, and black is also a colour the camera can produce.
- Feature means on data. The mean of each filter of one feature map over
  test images, which shows a location bias that survives real content.

Maps are channel means of post-activation (ReLU6) outputs, [H, W] in
feature-map pixels, row 0 at the top.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from blindspots.analysis.borders import border_statistics, channel_mean

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

# The zero input: every pixel 0 in the model's 0-255 input space.
ZERO_RGB = (0.0, 0.0, 0.0)
# The stride-16 feature map that feeds SSD's first box predictor.
DATA_FEATURE_LAYER = "Conv2d_11_pointwise"
BORDER_COLUMNS = ("input", "layer", "height", "width", "interior_mean", "top", "bottom", "left", "right", "top_bottom", "left_right")
# Sequential colour map for activations, which ReLU6 keeps in [0, 6].
ACTIVATION_CMAP = "magma"


# ---------------------------------------------------------------------------
# Constant-input maps


def constant_images(input_size: Sequence[int], colours: Sequence[Sequence[float]]) -> np.ndarray:
    """Build one image per RGB colour, each filled with that colour, shape [N, H, W, 3] float32.

    Colours are pixel values in the model's 0-255 input space. Raises
    ValueError for a colour that is not 3 values in [0, 255].
    """
    height, width = int(input_size[0]), int(input_size[1])
    images = np.empty((len(colours), height, width, 3), dtype=np.float32)
    for index, colour in enumerate(colours):
        rgb = np.asarray(colour, dtype=np.float64)
        if rgb.shape != (3,) or not np.all((rgb >= 0.0) & (rgb <= 255.0)):
            values = [float(value) for value in np.ravel(rgb)]
            raise ValueError(f"colour {values} is invalid; expected 3 pixel values (R, G, B) in [0, 255]")
        images[index] = rgb.astype(np.float32)
    return images


def layer_names(activations: Any) -> list[str]:
    """Return the output names of an activation model in the order it was built (execution order)."""
    outputs = activations.output
    if not isinstance(outputs, Mapping):
        raise ValueError(f"model {activations.name} has a single output; expected a dict of maps by layer name, as ssd.activation_model returns")
    return list(outputs.keys())


def constant_input_maps(
    activations: Any, input_size: Sequence[int], colours: Mapping[str, Sequence[float]]
) -> dict[str, dict[str, np.ndarray]]:
    """Feed one constant image per named colour and return the channel-mean map of every layer.

    `activations` is a tf_keras model that returns a dict of NHWC maps by
    layer name, such as `ssd.activation_model`. The result is
    {colour name: {layer name: [H, W] float64 map}}, layers in execution
    order. All images go through the model in one batch, in inference mode.
    """
    names = list(colours)
    images = constant_images(input_size, [colours[name] for name in names])
    outputs = activations(images, training=False)
    order = layer_names(activations)
    maps: dict[str, dict[str, np.ndarray]] = {}
    for index, name in enumerate(names):
        maps[name] = {layer: channel_mean(np.asarray(outputs[layer][index])) for layer in order}
    return maps


def border_table(maps: Mapping[str, np.ndarray], input_name: str) -> pd.DataFrame:
    """Tabulate `borders.border_statistics` of each layer's [H, W] map, one row per layer.

    Columns are `BORDER_COLUMNS`. `input` is `input_name`, for example
    "zero". Maps smaller than 3 x 3 have no interior, so their statistics
    are NaN. Relative values are (border mean - interior mean) / |interior
    mean|, and top_bottom > 0 means the top border is larger.
    """
    import pandas as pd

    rows = []
    too_small = []
    for layer, activation in maps.items():
        height, width = activation.shape
        row: dict[str, Any] = {"input": input_name, "layer": layer, "height": height, "width": width}
        if height < 3 or width < 3:
            too_small.append(layer)
            row.update({column: float("nan") for column in BORDER_COLUMNS[4:]})
        else:
            row.update(border_statistics(activation))
        rows.append(row)
    if too_small:
        logger.info("%s input: %d maps smaller than 3 x 3 have no border statistics: %s", input_name, len(too_small), ", ".join(too_small))
    return pd.DataFrame(rows, columns=list(BORDER_COLUMNS))


def plot_layer_maps(maps: Mapping[str, np.ndarray], title: str, input_description: str) -> tuple[Figure, str]:
    """Draw every layer's [H, W] map in one grid and return (figure, caption).

    Each panel is normalised on its own: its colours run from the map's
    minimum to its maximum, and the panel title gives that range, because
    magnitudes differ by orders between layers. The shared colour bar is
    that per-panel scale, 0 at the minimum and 1 at the maximum.
    `input_description` names the input in the caption, e.g. "an all-black
    image (pixel value 0)".
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    if not maps:
        raise ValueError("no activation maps to plot; pass at least one layer")
    columns = min(6, len(maps))
    rows = -(-len(maps) // columns)
    width, height = 2.6 * columns + 1.0, 2.1 * rows + 0.8
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    # A fixed layout, because every panel has the same decorations and
    # constrained layout doubled the drawing time of a 35-panel grid
    # (7.2 s against 3.7 s, matplotlib 3.10 on a busy 2-core VM).
    figure.subplots_adjust(left=0.01, right=1.0 - 1.0 / width, bottom=0.01, top=1.0 - 0.8 / height, wspace=0.08, hspace=0.5)
    axes = figure.subplots(rows, columns, squeeze=False)
    cmap = colormaps[ACTIVATION_CMAP]
    for axis, (layer, activation) in zip(axes.flat, maps.items()):
        low, high = float(activation.min()), float(activation.max())
        _draw_map(axis, activation, f"{layer} {activation.shape[0]}x{activation.shape[1]}\nrange {low:.3g} to {high:.3g}")
    for axis in list(axes.flat)[len(maps) :]:
        axis.set_visible(False)
    colour_bar_axis = figure.add_axes((1.0 - 0.75 / width, 0.2, 0.15 / width, 0.6))
    figure.colorbar(
        ScalarMappable(norm=Normalize(0.0, 1.0), cmap=cmap),
        cax=colour_bar_axis,
        label="activation, per panel: 0 = panel minimum, 1 = panel maximum",
    )
    figure.suptitle(title)
    caption = (
        f"Channel mean of every layer's ReLU6 output for {input_description}, row 0 at the top. "
        "Each panel is scaled to its own minimum and maximum, given in its title. "
        "With no padding every map would be flat, so any pattern comes from the padding. "
        "Look for a bottom row or right column that differs from the top row or left column. "
        "TF SAME at even sizes pads only the bottom and right, so there the padding itself makes the borders differ. "
        "Under even padding, a remaining difference comes from lopsided kernels."
    )
    return figure, caption


# ---------------------------------------------------------------------------
# Feature means on data


@dataclass
class FeatureMeans:
    """Means of one feature map over a set of images.

    `filter_means` is [H, W, C], the mean of each filter over `images`
    images. `mean_rgb` is the images' mean pixel value per channel (0-255).
    `scene_images` [S, H_in, W_in, 3] uint8 and `scene_maps` [S, H, W] (the
    channel mean of each scene) keep the first S images for per-scene plots,
    with their record keys in `scene_keys`.
    """

    layer: str
    filter_means: np.ndarray
    images: int
    mean_rgb: np.ndarray
    scene_images: np.ndarray
    scene_maps: np.ndarray
    scene_keys: list[str] = field(default_factory=list)

    @property
    def mean_map(self) -> np.ndarray:
        """Mean over filters of `filter_means`, [H, W]."""
        return self.filter_means.mean(axis=-1)


def feature_means(
    feature_model: Any,
    batches: Iterable[Mapping[str, Any]],
    layer: str = DATA_FEATURE_LAYER,
    scenes: int = 4,
    progress: bool = False,
) -> FeatureMeans:
    """Average the output of `feature_model` over image batches, per filter and location.

    `feature_model` maps float32 images [B, H, W, 3] (0-255) to one NHWC
    feature map. Each batch is a mapping with `image` [B, H, W, 3] (uint8 or
    float, 0-255, already at the model's input size) and optionally `key`
    [B] (bytes or str). The first `scenes` images are kept for per-scene
    maps. Raises ValueError when `batches` yields no image.
    """
    from tqdm import tqdm

    total: np.ndarray | None = None
    rgb_total = np.zeros(3, dtype=np.float64)
    count = 0
    pixels = 0
    scene_images: list[np.ndarray] = []
    scene_maps: list[np.ndarray] = []
    scene_keys: list[str] = []
    for batch in tqdm(batches, desc=f"feature means {layer}", unit="batch", disable=not progress):
        images = np.asarray(batch["image"], dtype=np.float32)
        outputs = np.asarray(feature_model(images, training=False), dtype=np.float64)
        total = outputs.sum(axis=0) if total is None else total + outputs.sum(axis=0)
        rgb_total += images.astype(np.float64).sum(axis=(0, 1, 2))
        count += images.shape[0]
        pixels += images.shape[0] * images.shape[1] * images.shape[2]

        keys = batch.get("key")
        for index in range(min(scenes - len(scene_images), images.shape[0])):
            scene_images.append(np.clip(np.rint(images[index]), 0, 255).astype(np.uint8))
            scene_maps.append(outputs[index].mean(axis=-1))
            scene_keys.append(_key_text(keys[index]) if keys is not None else f"image {len(scene_keys)}")
    if total is None or count == 0:
        raise ValueError(f"no images to average for {layer}; the test split is empty or analyze.data_batches is 0")

    height, width = total.shape[:2]
    logger.info("%s: mean of %d images, map %dx%d with %d filters", layer, count, height, width, total.shape[-1])
    return FeatureMeans(
        layer=layer,
        filter_means=total / count,
        images=count,
        mean_rgb=rgb_total / pixels,
        scene_images=np.stack(scene_images),
        scene_maps=np.stack(scene_maps),
        scene_keys=scene_keys,
    )


def _key_text(key: Any) -> str:
    return key.decode("utf-8") if isinstance(key, bytes) else str(key)


def plot_feature_means(means: FeatureMeans, title: str, filters: int = 16) -> tuple[Figure, str]:
    """Draw the mean over filters, the first `filters` filters' means and the per-scene maps, and return (figure, caption).

    Every map panel has its own colour range (its minimum to its maximum),
    because filters differ in scale. Scenes show the input image above its
    channel-mean map.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    filters_drawn = min(int(filters), means.filter_means.shape[-1])
    filter_columns = 8
    filter_rows = -(-filters_drawn // filter_columns)
    scenes = len(means.scene_maps)
    figure = Figure(figsize=(2.0 * filter_columns, 3.2 + 1.6 * filter_rows + 3.0), layout="constrained")
    FigureCanvasAgg(figure)
    top, middle, bottom = figure.subfigures(3, 1, height_ratios=[3.2, 1.6 * filter_rows, 3.0])

    _draw_mean_and_profiles(top, means.mean_map)
    top.suptitle(f"Mean over {means.filter_means.shape[-1]} filters and {means.images} test images", fontsize=10)

    filter_axes = middle.subplots(filter_rows, filter_columns, squeeze=False)
    for index, axis in enumerate(filter_axes.flat):
        if index < filters_drawn:
            _draw_map(axis, means.filter_means[:, :, index], f"filter {index}")
        else:
            axis.set_visible(False)
    middle.suptitle(f"Mean of each of the first {filters_drawn} filters, own colour range per panel", fontsize=10)

    scene_axes = bottom.subplots(2, max(scenes, 1), squeeze=False)
    for index in range(scenes):
        scene_axes[0, index].imshow(means.scene_images[index], interpolation="nearest")
        scene_axes[0, index].set_title(_short_key(means.scene_keys[index]), fontsize=7)
        scene_axes[0, index].set_axis_off()
        _draw_map(scene_axes[1, index], means.scene_maps[index], "mean over filters")
    bottom.suptitle("Single test scenes: input image and its mean over filters", fontsize=10)

    height, width = means.mean_map.shape
    figure.suptitle(f"{title}: {means.layer} ({height}x{width})")
    caption = (
        f"Mean activation of {means.layer}, the stride-16 map that feeds SSD's first box predictor, "
        f"over {means.images} test images. Top: the mean over all filters, with its mean per row and per column. "
        f"Middle: each of the first {filters_drawn} "
        "filters on its own colour scale. Bottom: single scenes. Content averages out over many images, "
        "so a frame of brighter or darker rows and columns along the borders is a location bias "
        "that the network applies to every image. Compare the bottom and right edges with the top and left."
    )
    return figure, caption


def _draw_mean_and_profiles(panel: Any, mean_map: np.ndarray) -> None:
    """Draw the mean map beside its row profile (mean of each row) and column profile (mean of each column)."""
    map_axis, row_axis, column_axis = panel.subplots(1, 3, width_ratios=[2.2, 1.0, 1.4])
    _draw_map(map_axis, mean_map, "mean over filters", ticks=True)
    map_axis.set_xlabel("x (feature-map px)")
    map_axis.set_ylabel("y (feature-map px)")
    panel.colorbar(map_axis.images[0], ax=map_axis, label="mean ReLU6 output")

    rows = np.arange(mean_map.shape[0])
    row_axis.plot(mean_map.mean(axis=1), rows, marker="o", markersize=3)
    row_axis.set_ylim(mean_map.shape[0] - 0.5, -0.5)
    row_axis.set_xlabel("mean over x")
    row_axis.set_ylabel("y (feature-map px, 0 = top)")
    row_axis.set_title("row profile", fontsize=9)

    columns = np.arange(mean_map.shape[1])
    column_axis.plot(columns, mean_map.mean(axis=0), marker="o", markersize=3)
    column_axis.set_xlabel("x (feature-map px, 0 = left)")
    column_axis.set_ylabel("mean over y")
    column_axis.set_title("column profile", fontsize=9)


def _draw_map(axis: Any, activation: np.ndarray, title: str, ticks: bool = False) -> None:
    """Draw one map on its own colour range, from its minimum to its maximum."""
    low, high = float(activation.min()), float(activation.max())
    axis.imshow(activation, cmap=ACTIVATION_CMAP, vmin=low, vmax=high if high > low else low + 1.0, interpolation="nearest")
    if title:
        axis.set_title(title, fontsize=7)
    # Tick labels on many small panels cost seconds of layout time and add
    # nothing that the map size in the title does not.
    if not ticks:
        axis.set_xticks([])
        axis.set_yticks([])


def _short_key(key: str, limit: int = 28) -> str:
    return key if len(key) <= limit else "..." + key[-(limit - 3) :]
