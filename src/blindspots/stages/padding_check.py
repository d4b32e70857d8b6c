"""`blindspots padding-check`: print where a network pads unevenly for one input size.

    blindspots padding-check --input 720x1280
    blindspots padding-check --input 193x321 --out reports/padding
    blindspots padding-check --input 224x224 --keras-model model.keras

Without --keras-model it audits SSD MobileNet v1 with the four SSD extra
layers. This is a tool, not a pipeline stage, so it reads no params file.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from blindspots.config.schema import ALIGNMENTS, PADDING_MODES

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

# The last backbone layer. Layers after it are the SSD extra layers.


def parse_input_size(text: str) -> tuple[int, int]:
    """Parse "HxW" (for example "720x1280") into (height, width) in pixels."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"invalid input size '{text}'; expected HEIGHTxWIDTH in pixels, e.g. 720x1280")
    return int(match.group(1)), int(match.group(2))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input", required=True, type=parse_input_size, metavar="HxW", help="input height x width in pixels, e.g. 720x1280"
    )
    parser.add_argument(
        "--padding", default="tf_same", choices=PADDING_MODES, help="padding mode of the SSD MobileNet v1 audit (default: tf_same)"
    )
    parser.add_argument(
        "--alignment",
        default="tf",
        choices=ALIGNMENTS,
        help="where non-zero modes put their padding: tf (as TF SAME) or explicit ((k-1)/2 each side) (default: tf)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="folder to write padding_audit.csv and padding_audit.md into (default: none)"
    )
    parser.add_argument(
        "--keras-model",
        type=Path,
        default=None,
        help="saved tf_keras model file to audit instead of SSD MobileNet v1; it is rebuilt at --input when its input differs",
    )


def run(args: argparse.Namespace) -> None:
    """Audit the network, print the table and the recommendation, and write files when --out is set."""
    from blindspots.analysis import padding_audit
    from blindspots.modeling.geometry import GeometryError

    try:
        if args.keras_model is None:
            table, title, recommendations = _audit_reference(args.input, args.padding, args.alignment)
        else:
            table, title, recommendations = _audit_keras_file(args.keras_model, args.input)
    except (GeometryError, padding_audit.AuditError) as error:
        raise SystemExit(f"padding-check: {error}") from error

    print(padding_audit.audit_markdown(table, title, recommendations))
    if args.out is not None:
        padding_audit.write_audit(table, args.out, title, recommendations)


def _audit_reference(input_size: tuple[int, int], mode: str, alignment: str) -> tuple[pd.DataFrame, str, list[str]]:
    from blindspots.analysis import padding_audit

    return padding_audit.audit_reference_network(input_size, mode, alignment)


def _audit_keras_file(path: Path, input_size: tuple[int, int]) -> tuple[pd.DataFrame, str, list[str]]:
    import tf_keras

    from blindspots.analysis import padding_audit
    from blindspots.modeling.padding import CUSTOM_OBJECTS

    if not path.exists():
        raise SystemExit(f"padding-check: Keras model file not found: {path}")
    logger.info("loading %s", path)
    model = tf_keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)
    model = padding_audit.keras_model_at_input_size(model, input_size)
    table = padding_audit.audit_keras_model(model)
    recommendations = [padding_audit.describe_even_sizes(padding_audit.nearest_even_sizes_keras(model))]
    title = f"Padding audit: {model.name} ({path.name}), input {input_size[0]}x{input_size[1]} px"
    return table, title, recommendations
