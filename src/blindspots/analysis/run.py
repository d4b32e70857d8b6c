"""Run every spatial-bias analysis of one trained detector and write the results into a folder.

The analyses: the padding audit at the model's input size, constant-input
activation maps, feature means over test images, mean kernels and
foveation maps. `analyze_model` writes the files of `OUTPUT_FILES` (and
`mean_colour_maps.png` when enabled) and returns the headline numbers that
it also writes to `metrics.json`. The caller makes the folder atomic.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from blindspots import runinfo
from blindspots.analysis import activations as activation_lib

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

# Files that every run writes. `mean_colour_maps.png` is added when
# analyze.mean_colour_input is true, and `run.json` by the stage.
OUTPUT_FILES = (
    "padding_audit.csv",
    "padding_audit.md",
    "zero_input_maps.png",
    "border_stats.csv",
    "feature_means.png",
    "mean_kernels.png",
    "kernel_stats.csv",
    "foveation.png",
    "foveation_summary.csv",
    "metrics.json",
    "captions.json",
)
MEAN_COLOUR_FILE = "mean_colour_maps.png"
# Images per batch for the feature means. analyze.data_batches sets how many
# batches are read, so its default of 4 averages 64 test images.
DATA_BATCH_SIZE = 16
# Filters shown one by one in feature_means.png, and single scenes below them.
FILTERS_SHOWN = 16
SCENES = 4
# Name prefix of the SSD box and class predictor layers (`ssd.build_ssd`).
PREDICTOR_PREFIX = "BoxPredictor_"
# Last backbone layer, for the backbone-only input size recommendation.


def analyze_model(
    model: Any,
    model_cfg: Any,
    settings: Any,
    test_pattern: str,
    out_dir: Path | str,
    label: str,
) -> dict[str, Any]:
    """Run all analyses of `model`, write their files into `out_dir` and return the headline metrics.

    `model_cfg` is the model's own config (padding, alignment, input_size),
    `settings` the `analyze` params section, `test_pattern` the glob of the
    prepared test shards, and `label` names the model in figure titles,
    e.g. "tf_same_even seed 0".
    """
    from blindspots.modeling import ssd

    out_dir = Path(out_dir)
    input_size = (int(model_cfg.input_size[0]), int(model_cfg.input_size[1]))
    mode, alignment = str(model_cfg.padding), str(model_cfg.alignment)
    captions: dict[str, str] = {}
    logger.info("analysing %s: input %dx%d px, padding %s, alignment %s", label, *input_size, mode, alignment)

    audit = write_padding_audit(out_dir, input_size, mode, alignment)

    activations = ssd.activation_model(model)
    means = data_feature_means(activations, test_pattern, input_size, int(settings.data_batches))
    captions["feature_means.png"] = write_feature_means(out_dir, means, label)

    colours = {"zero": list(activation_lib.ZERO_RGB)}
    if settings.mean_colour_input:
        colours["mean_colour"] = [float(value) for value in means.mean_rgb]
    borders, map_captions = write_constant_input_maps(out_dir, activations, input_size, colours, label)
    borders = _append_data_borders(borders, means)
    runinfo.write_text(out_dir / "border_stats.csv", borders.to_csv(index=False))
    captions.update(map_captions)

    kernel_table, captions["mean_kernels.png"] = write_kernels(out_dir, model, label)
    foveation_table, captions["foveation.png"] = write_foveation(out_dir, input_size, settings.foveation_modes, mode, alignment)

    metrics = headline_metrics(audit, borders, kernel_table, foveation_table, mode)
    metrics.update(
        {
            "input_size": list(input_size),
            "padding": mode,
            "alignment": alignment,
            "images_read": means.images,
            "mean_rgb": [round(float(value), 3) for value in means.mean_rgb],
            "zero_input_rgb": list(activation_lib.ZERO_RGB),
        }
    )
    runinfo.write_json(out_dir / "metrics.json", metrics)
    runinfo.write_json(out_dir / "captions.json", captions)
    return metrics


# ---------------------------------------------------------------------------
# The analyses, one writer each


def write_padding_audit(out_dir: Path, input_size: tuple[int, int], mode: str, alignment: str) -> pd.DataFrame:
    """Write padding_audit.csv and .md with the nearest evenly padding input sizes, and return the table."""
    from blindspots.analysis import padding_audit

    table, title, recommendations = padding_audit.audit_reference_network(input_size, mode, alignment)
    padding_audit.write_audit(table, out_dir, title, recommendations)
    logger.info("padding audit: %d of %d layers pad unevenly", len(padding_audit.uneven_layers(table)), len(table))
    return table


def read_test_batches(pattern: str, input_size: tuple[int, int], batches: int, batch_size: int = DATA_BATCH_SIZE) -> Iterator[dict[str, Any]]:
    """Yield up to `batches` batches of prepared test images, `image` float32 [B, H, W, 3] (0-255) and `key` [B].

    Images are resized (bilinear) to `input_size` (H, W) when the prepared
    size differs, as the evaluate stage does. Records come in file order.
    """
    import tensorflow as tf

    from blindspots.data.records import read_dataset

    def to_model_input(record: dict[str, Any]) -> dict[str, Any]:
        image = tf.cast(record["image"], tf.float32)
        if tuple(image.shape[:2]) != tuple(input_size):
            image = tf.image.resize(image, input_size, method="bilinear")
        return {"image": tf.ensure_shape(image, [input_size[0], input_size[1], 3]), "key": record["key"]}

    dataset = read_dataset(pattern).map(to_model_input).batch(batch_size).take(batches)
    yield from dataset.as_numpy_iterator()


def data_feature_means(activations: Any, pattern: str, input_size: tuple[int, int], batches: int) -> activation_lib.FeatureMeans:
    """Average the stride-16 feature map over `batches` batches of test images.

    `activations` is `ssd.activation_model` of the detector. The map is
    `activations.DATA_FEATURE_LAYER`.
    """
    import tf_keras


    layer = activation_lib.DATA_FEATURE_LAYER
    feature_model = tf_keras.Model(activations.input, activations.output[layer], name=f"{layer}_features")
    return activation_lib.feature_means(
        feature_model, read_test_batches(pattern, input_size, batches), layer=layer, scenes=SCENES, progress=True
    )


def write_feature_means(out_dir: Path, means: activation_lib.FeatureMeans, label: str) -> str:
    """Write feature_means.png and return its caption."""
    from blindspots.sweep.figures import save_figure

    figure, caption = activation_lib.plot_feature_means(means, f"Feature means, {label}", filters=FILTERS_SHOWN)
    save_figure(figure, out_dir / "feature_means.png", dpi=110)
    return caption


# The file and the caption phrase of each constant input.
CONSTANT_INPUTS = {
    "zero": ("zero_input_maps.png", "an all-black image (pixel value 0, which the model's rescaling maps to -1)"),
    "mean_colour": (MEAN_COLOUR_FILE, "an image filled with the mean colour of the test images read for the feature means"),
}


def write_constant_input_maps(
    out_dir: Path, activations: Any, input_size: tuple[int, int], colours: Mapping[str, Sequence[float]], label: str
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Write one map grid per constant input and return (border statistics of every map, captions).

    `colours` maps a key of `CONSTANT_INPUTS` to an RGB pixel value (0-255).
    """
    import pandas as pd

    from blindspots.sweep.figures import save_figure

    maps = activation_lib.constant_input_maps(activations, input_size, colours)
    tables, captions = [], {}
    for name, layer_maps in maps.items():
        file_name, description = CONSTANT_INPUTS[name]
        rgb = ", ".join(f"{value:.0f}" for value in colours[name])
        title = f"Channel-mean activations for a constant input (RGB {rgb}), {label}"
        figure, captions[file_name] = activation_lib.plot_layer_maps(layer_maps, title, description)
        save_figure(figure, out_dir / file_name, dpi=100)
        tables.append(activation_lib.border_table(layer_maps, name))
    return pd.concat(tables, ignore_index=True), captions


def _append_data_borders(borders: pd.DataFrame, means: activation_lib.FeatureMeans) -> pd.DataFrame:
    """Add the border statistics of the feature mean over test images as input `test_data`."""
    import pandas as pd


    data_row = activation_lib.border_table({means.layer: means.mean_map}, "test_data")
    return pd.concat([borders, data_row], ignore_index=True)


def write_kernels(out_dir: Path, model: Any, label: str) -> tuple[pd.DataFrame, str]:
    """Write kernel_stats.csv and mean_kernels.png for every spatial kernel of `model`; return (table, caption)."""
    from blindspots.analysis import kernels

    records = kernels.kernel_records_from_keras(model)
    table = kernels.kernel_statistics(records)
    runinfo.write_text(out_dir / "kernel_stats.csv", table.to_csv(index=False))
    # The box predictors stay in the table only: they are not part of the
    # feature extractor, and 12 more panels would double the drawing time.
    plotted = [record for record in records if not record.name.startswith(PREDICTOR_PREFIX)]
    kernels.plot_mean_kernels(plotted, out_dir / "mean_kernels.png", f"Mean kernels (mean over channels), {label}")
    strided = int(table["downsampling"].sum())
    logger.info("kernels: %d layers with spatial kernels, %d of them stride 2", len(table), strided)
    caption = (
        "Each panel is one layer's kernel averaged over its input and output channels, with the values printed. "
        "Bold titles mark stride-2 (down-sampling) layers. Left-right and top-bottom are (left column - right column) "
        "and (top row - bottom row) over the sum of |weights|, in [-1, 1]. A network trained with uneven padding "
        "tends to learn stride-2 kernels that lean to one side, so look for a consistent sign of top-bottom "
        "across the bold panels. The SSD box predictors are listed in kernel_stats.csv but not drawn."
    )
    return table, caption


def foveation_modes(requested: Sequence[str], own_mode: str) -> list[str]:
    """Return `requested` without repeats, with `own_mode` appended when it is missing."""
    modes = list(dict.fromkeys(str(mode) for mode in requested))
    if own_mode not in modes:
        modes.append(own_mode)
    return modes


def write_foveation(
    out_dir: Path, input_size: tuple[int, int], requested: Sequence[str], own_mode: str, alignment: str
) -> tuple[pd.DataFrame, str]:
    """Write foveation.png and foveation_summary.csv for each mode at `input_size`; return (summary, caption).

    A requested mode that the network cannot apply at this size (a mirror
    padding wider than a small late feature map) is skipped with a warning.
    The model's own mode always runs, because the model was built with it.
    """
    from blindspots.analysis import foveation
    from blindspots.modeling.geometry import GeometryError

    maps = {}
    for mode in foveation_modes(requested, own_mode):
        try:
            maps[mode] = foveation.foveation_map(input_size, mode, alignment)
        except GeometryError as error:
            if mode == own_mode:
                raise
            logger.warning("foveation map %s skipped at %dx%d: %s", mode, *input_size, error)
    summary = foveation.foveation_summary(maps)
    runinfo.write_text(out_dir / "foveation_summary.csv", summary.to_csv(index=False))
    title = f"Foveation: paths from each input pixel to the output, {input_size[0]}x{input_size[1]} px, alignment {alignment}"
    foveation.plot_foveation_maps(maps, out_dir / "foveation.png", title)
    caption = (
        "Number of paths from each input pixel to the last layer's outputs, with all weights 1, divided by the "
        "map's mean and drawn on a log colour scale. Zero padding gives the borders fewer paths, so the network "
        "sees border content less. Mirror and circular padding move paths to other pixels instead. "
        f"The model's own mode is {own_mode}. Look for a bottom or right border that differs from the top or left: "
        "that asymmetry is the uneven padding."
    )
    return summary, caption


# ---------------------------------------------------------------------------
# Headline numbers


def headline_metrics(
    audit: pd.DataFrame,
    borders: pd.DataFrame,
    kernel_table: pd.DataFrame,
    foveation_table: pd.DataFrame,
    own_mode: str,
) -> dict[str, Any]:
    """Reduce the analysis tables to the numbers of metrics.json.

    - uneven_layers_height / _width: layers of the padding audit that pad
      unevenly along that axis.
    - zero_input_abs_top_bottom / _left_right: mean over layers of the
      |relative border asymmetry| of the zero-input maps, and the number of
      layers measured (maps of at least 3 x 3). Likewise `mean_colour_input_*`
      when that input ran.
    - data_top_bottom / data_left_right: signed border asymmetry of the
      feature mean over test images.
    - kernel_top_bottom_stride2 / kernel_left_right_stride2: mean signed
      asymmetry of the mean kernels of the stride-2 layers, and
      kernel_top_bottom_stride2_magnitude the mean of its absolute value.
    - foveation_centre_border_ratio: centre/border path ratio of `own_mode`.
    Values that cannot be computed are None (JSON null).

    NOTE: a constant-input map's border asymmetry comes from the kernels as
    well as the padding. An evenly padding network with lopsided kernels
    (an untrained one, for example) also scores above 0, so compare
    variants rather than reading one value against 0.
    """
    metrics: dict[str, Any] = {
        "uneven_layers_height": int(audit["uneven_h"].sum()),
        "uneven_layers_width": int(audit["uneven_w"].sum()),
    }
    for name in ("zero", "mean_colour"):
        rows = borders[borders["input"] == name]
        if rows.empty:
            continue
        measured = rows.dropna(subset=["top_bottom", "left_right"])
        metrics[f"{name}_input_layers_measured"] = len(measured)
        metrics[f"{name}_input_abs_top_bottom"] = _finite(measured["top_bottom"].abs().mean())
        metrics[f"{name}_input_abs_left_right"] = _finite(measured["left_right"].abs().mean())

    data_rows = borders[borders["input"] == "test_data"]
    metrics["data_top_bottom"] = _finite(data_rows["top_bottom"].iloc[0]) if len(data_rows) else None
    metrics["data_left_right"] = _finite(data_rows["left_right"].iloc[0]) if len(data_rows) else None

    strided = kernel_table[kernel_table["downsampling"].astype(bool)]
    metrics["kernel_stride2_layers"] = len(strided)
    metrics["kernel_top_bottom_stride2"] = _finite(strided["top_bottom"].mean())
    metrics["kernel_left_right_stride2"] = _finite(strided["left_right"].mean())
    metrics["kernel_top_bottom_stride2_magnitude"] = _finite(strided["top_bottom"].abs().mean())

    own = foveation_table[foveation_table["mode"] == own_mode]
    metrics["foveation_mode"] = own_mode
    metrics["foveation_centre_border_ratio"] = _finite(own["centre_border_ratio"].iloc[0]) if len(own) else None
    return metrics


def _finite(value: Any) -> float | None:
    """Return `value` as a float, or None for NaN, infinity or a missing value."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None

