"""Compose schema defaults, a preset and `params.yaml`, then validate.

Precedence, lowest first: the dataclass defaults of `schema.py`, the
preset named by `preset:` (a YAML file in `conf/presets/`), `params.yaml`,
and finally Hydra-style `key=value` overrides from the command line.
Every key and value is checked before a stage does any work.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from blindspots.config import schema
from blindspots.data.bstld import class_names
from blindspots.modeling import geometry

DEFAULT_PARAMS = Path("params.yaml")
PRESET_DIR = Path("conf/presets")
VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ConfigError(ValueError):
    """An invalid key or value in the params. The message names the fix."""


def _suggest(key: str, valid: Iterable[str]) -> str:
    matches = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return f" Did you mean '{matches[0]}'?" if matches else ""


def _check_keys(data: Any, template: Any, path: str, source: str) -> None:
    """Reject keys that the schema does not define, suggesting the nearest."""
    if not isinstance(data, Mapping) or not isinstance(template, DictConfig):
        return
    if OmegaConf.get_type(template) is dict:
        # A free-form mapping such as `variants` or `data.urls`: check the
        # values against the element type, if it is a structured config.
        element = template._metadata.element_type  # noqa: SLF001 - OmegaConf exposes no public accessor
        if isinstance(element, type) and hasattr(element, "__dataclass_fields__"):
            element_template = OmegaConf.structured(element)
            for name, value in data.items():
                _check_keys(value, element_template, f"{path}{name}.", source)
        return
    valid = list(template.keys())
    for key, value in data.items():
        if key not in valid:
            raise ConfigError(
                f"{source}: unknown key '{path}{key}'.{_suggest(str(key), valid)} "
                f"Valid keys under '{path.rstrip('.') or 'top level'}': {', '.join(valid)}."
            )
        _check_keys(value, template[key], f"{path}{key}.", source)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise ConfigError(f"params file not found: {path}. Run from the repository root or pass --params.") from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}.")
    return data


def _dotlist_to_dict(overrides: Iterable[str]) -> dict[str, Any]:
    """Turn Hydra-style `a.b=value` overrides into a nested dict (values parsed as YAML)."""
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value, e.g. train.steps=100.")
        key, raw = item.split("=", 1)
        key = key.lstrip("+")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as error:
            raise ConfigError(f"override '{item}': value is not valid YAML: {error}") from error
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{part}' is not a section.")
        node[parts[-1]] = value
    return nested


def _merge(base: DictConfig, data: Mapping[str, Any], source: str) -> DictConfig:
    _check_keys(data, base, "", source)
    try:
        return OmegaConf.merge(base, data)  # type: ignore[return-value]
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "?"
        # OmegaConf appends full_key and type lines to its message. The key is already named.
        detail = next(iter(str(error.msg if hasattr(error, "msg") else error).splitlines()), "")
        message = f"{source}: invalid value for '{key}': {detail}"
        if str(key).rsplit(".", 1)[-1] in ("True", "False"):
            # PyYAML follows YAML 1.1, where bare Off, On, No and Yes are booleans.
            message += ". A bare Off, On, No or Yes key is read as a boolean: quote it, as in \"Off\": 8.0."
        raise ConfigError(message) from error


def load_params(
    params_path: Path | str = DEFAULT_PARAMS,
    overrides: Iterable[str] = (),
    preset_dir: Path | str | None = None,
) -> DictConfig:
    """Load, compose and validate the params. Raises ConfigError on any problem."""
    params_path = Path(params_path)
    user = _read_yaml(params_path)
    override_dict = _dotlist_to_dict(overrides)

    config = schema.schema_defaults()
    preset = override_dict.get("preset", user.get("preset", ""))
    if preset:
        presets = Path(preset_dir) if preset_dir else params_path.parent / PRESET_DIR
        preset_file = presets / f"{preset}.yaml"
        if not preset_file.is_file():
            available = sorted(p.stem for p in presets.glob("*.yaml"))
            raise ConfigError(
                f"{params_path}: preset '{preset}' not found in {presets}. Available presets: {', '.join(available) or 'none'}."
            )
        config = _merge(config, _read_yaml(preset_file), str(preset_file))
    config = _merge(config, user, str(params_path))
    config = _merge(config, override_dict, "command-line override")
    validate(config, str(params_path))
    return config


def _fail(source: str, key: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{source}: invalid value {value!r} for '{key}'. Allowed: {allowed}.")


def _check_choice(source: str, key: str, value: Any, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    if value not in choices:
        _fail(source, key, value, ", ".join(choices))


def _check_positive(source: str, key: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        _fail(source, key, value, "a number >= 0" if allow_zero else "a number > 0")


def _check_unit(source: str, key: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        _fail(source, key, value, "a number between 0 and 1")


def _check_size(source: str, key: str, value: Any) -> None:
    if len(value) != 2 or any(int(v) < 1 for v in value):
        _fail(source, key, list(value), "[height, width], two positive integers in pixels")


def _validate_model(source: str, model: DictConfig, prefix: str = "model") -> None:
    _check_choice(source, f"{prefix}.padding", model.padding, schema.PADDING_MODES)
    _check_choice(source, f"{prefix}.alignment", model.alignment, schema.ALIGNMENTS)
    _check_size(source, f"{prefix}.input_size", model.input_size)
    _check_positive(source, f"{prefix}.width_multiplier", model.width_multiplier)
    size = (int(model.input_size[0]), int(model.input_size[1]))
    try:
        geometry.trace_network(size, model.padding, model.alignment)
    except geometry.GeometryError as error:
        minimum = geometry.minimum_input_side(model.padding, model.alignment)
        raise ConfigError(
            f"{source}: '{prefix}.input_size' {list(size)} is too small for the network's depth "
            f"with padding '{model.padding}': {error}. The minimum side is {minimum} px."
        ) from error


def _validate_class_weights(source: str, weights: DictConfig, label_map: str) -> None:
    names = class_names(label_map)
    for name, weight in weights.items():
        if name not in names:
            _fail(source, "model.class_weights", name, f"a class of prepare.label_map '{label_map}': {', '.join(names)}")
        if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight > 0):
            _fail(source, f"model.class_weights.{name}", weight, "a positive, finite number")


def _validate_pretrain(source: str, config: DictConfig) -> None:
    pretrain = config.train.pretrain
    _check_positive(source, "train.pretrain.steps", pretrain.steps, allow_zero=True)
    for key in ("batch_size", "learning_rate", "crops_per_light"):
        _check_positive(source, f"train.pretrain.{key}", pretrain[key])
    _check_positive(source, "train.pretrain.backgrounds_per_image", pretrain.backgrounds_per_image, allow_zero=True)
    crop = int(pretrain.crop_size)
    _check_positive(source, "train.pretrain.crop_size", crop)
    if not 0 <= int(pretrain.jitter) < (crop + 1) // 2:
        _fail(source, "train.pretrain.jitter", pretrain.jitter, f"0 to {(crop + 1) // 2 - 1}, less than half of train.pretrain.crop_size ({crop})")
    if int(pretrain.steps) == 0:
        return
    for name in config.variants:
        model = resolve_variant(config, str(name)).model
        shortest = min(int(side) for side in model.input_size)
        if crop > shortest:
            _fail(source, "train.pretrain.crop_size", crop, f"at most {shortest}, the shorter input side of variant '{name}'")
        try:
            geometry.trace_network((crop, crop), model.padding, model.alignment)
        except geometry.GeometryError as error:
            minimum = geometry.minimum_input_side(model.padding, model.alignment)
            _fail(source, "train.pretrain.crop_size", crop, f"at least {minimum} px for padding '{model.padding}' of variant '{name}' ({error})")


def validate(config: DictConfig, source: str = "params") -> None:
    """Check every value the schema types cannot express."""
    _check_choice(source, "data.source", config.data.source, schema.DATA_SOURCES)
    for quirk in config.data.synthetic.quirks:
        _check_choice(source, "data.synthetic.quirks", quirk, schema.QUIRKS)
    _check_size(source, "data.synthetic.image_size", config.data.synthetic.image_size)
    for key in ("empty_share_train", "empty_share_test"):
        _check_unit(source, f"data.synthetic.{key}", config.data.synthetic[key])
    for key in ("train_sequences", "frames_per_sequence", "test_images"):
        _check_positive(source, f"data.synthetic.{key}", config.data.synthetic[key])
    for name, digest in config.data.sha256.items():
        if not re.fullmatch(r"[0-9a-fA-F]{64}", str(digest)):
            _fail(source, f"data.sha256.{name}", digest, "a 64-character hexadecimal SHA-256 digest")

    _check_choice(source, "prepare.label_map", config.prepare.label_map, schema.LABEL_MAPS)
    _check_size(source, "prepare.image_size", config.prepare.image_size)
    _check_positive(source, "prepare.val_sequences", config.prepare.val_sequences, allow_zero=True)
    _check_positive(source, "prepare.shards", config.prepare.shards)

    model = config.model
    _validate_model(source, model)
    _check_choice(source, "model.loss", model.loss, schema.LOSSES)
    anchors = model.anchors
    _check_positive(source, "model.anchors.min_scale", anchors.min_scale)
    if not anchors.min_scale < anchors.max_scale:
        _fail(source, "model.anchors.max_scale", anchors.max_scale, f"a scale greater than model.anchors.min_scale ({anchors.min_scale})")
    if anchors.num_layers != len(geometry.FEATURE_LAYERS):
        _fail(source, "model.anchors.num_layers", anchors.num_layers, f"{len(geometry.FEATURE_LAYERS)}, one per SSD feature map")
    for ratio in list(anchors.aspect_ratios) + list(anchors.extra_aspect_ratios):
        _check_positive(source, "model.anchors.aspect_ratios", ratio)
    for key in ("match_iou", "nms_iou", "score_threshold"):
        _check_unit(source, f"model.{key}", model[key])
    _check_positive(source, "model.max_detections", model.max_detections)
    _validate_class_weights(source, model.class_weights, config.prepare.label_map)

    train = config.train
    _check_positive(source, "train.steps", train.steps)
    _check_positive(source, "train.batch_size", train.batch_size)
    _check_positive(source, "train.learning_rate", train.learning_rate)
    _check_positive(source, "train.clip_norm", train.clip_norm, allow_zero=True)
    _check_unit(source, "train.repeat_factor_threshold", train.repeat_factor_threshold)
    _check_choice(source, "train.optimizer", train.optimizer, schema.OPTIMIZERS)
    _check_choice(source, "train.schedule", train.schedule, schema.SCHEDULES)
    _check_choice(source, "train.strategy", train.strategy, schema.STRATEGIES)
    _check_positive(source, "train.checkpoint_every", train.checkpoint_every)
    _check_positive(source, "train.warmup_steps", train.warmup_steps, allow_zero=True)
    _check_positive(source, "train.precise_bn_batches", train.precise_bn_batches, allow_zero=True)
    if list(train.boundaries) != sorted(train.boundaries):
        _fail(source, "train.boundaries", list(train.boundaries), "step numbers in increasing order")

    if not config.variants:
        raise ConfigError(f"{source}: 'variants' is empty. Add at least one named variant, e.g. variants: {{baseline: {{}}}}.")
    for name in config.variants:
        if not VARIANT_NAME.match(str(name)):
            _fail(
                source,
                "variants",
                name,
                "a name usable as a path segment: letters, digits, '_', '-' and '.', starting with a letter or digit, at most 64 characters",
            )
        resolved = resolve_variant(config, str(name))
        _validate_model(source, resolved.model, prefix=f"variants.{name}")
        if not resolved.seeds:
            _fail(source, f"variants.{name}.seeds", [], "a non-empty list of integer seeds")
        if len(set(resolved.seeds)) != len(resolved.seeds):
            _fail(source, f"variants.{name}.seeds", list(resolved.seeds), "distinct integer seeds")
    _validate_pretrain(source, config)

    _check_choice(source, "evaluate.interpolation", config.evaluate.interpolation, schema.INTERPOLATIONS)
    _check_unit(source, "evaluate.iou", config.evaluate.iou)
    if list(config.evaluate.width_buckets) != sorted(config.evaluate.width_buckets):
        _fail(source, "evaluate.width_buckets", list(config.evaluate.width_buckets), "bucket edges in increasing order")
    for mode in config.sweep.modes:
        _check_choice(source, "sweep.modes", mode, schema.SWEEP_MODES)
    for key in ("step", "columns", "grid_step", "crops_per_class", "backgrounds", "batch_size"):
        _check_positive(source, f"sweep.{key}", config.sweep[key])
    for key in ("score_threshold", "iou", "blind_fraction"):
        _check_unit(source, f"sweep.{key}", config.sweep[key])
    for mode in config.analyze.foveation_modes:
        _check_choice(source, "analyze.foveation_modes", mode, schema.PADDING_MODES)


@dataclass(frozen=True)
class ResolvedVariant:
    """A variant's full model config with its overrides applied."""

    name: str
    model: DictConfig
    seeds: tuple[int, ...]


def resolve_variant(config: DictConfig, name: str) -> ResolvedVariant:
    """Apply variant `name`'s overrides on top of the shared `model` section."""
    if name not in config.variants:
        available = list(config.variants.keys())
        raise ConfigError(f"unknown variant '{name}'.{_suggest(name, available)} Defined variants: {', '.join(available)}.")
    variant = config.variants[name]
    model = OmegaConf.create(OmegaConf.to_container(config.model, resolve=True))
    for key in ("padding", "alignment", "input_size", "width_multiplier"):
        value = variant[key]
        if value is not None:
            model[key] = value
    return ResolvedVariant(name=name, model=model, seeds=tuple(int(s) for s in variant.seeds))


def run_ids(config: DictConfig) -> list[tuple[str, int]]:
    """Return every (variant, seed) pair in params order."""
    return [(name, seed) for name in config.variants for seed in resolve_variant(config, name).seeds]


def section(config: DictConfig, name: str) -> DictConfig:
    """Return one stage's own section, read-only."""
    node = config[name]
    OmegaConf.set_readonly(node, True)
    return node


def to_dict(config: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]
