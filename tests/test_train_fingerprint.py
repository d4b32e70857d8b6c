"""Checkpoint fingerprints: a run resumes only under the same config, training code and shards."""

from pathlib import Path

import yaml

from blindspots import runinfo
from blindspots.stages import train

RUN_CONFIG = {"model": {"padding": "tf_same"}, "train": {"steps": 6}, "variant": "tf_same_even", "seed": 0}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def code_tree(root: Path) -> Path:
    """Return a package root with the training-code layout and one file per entry."""
    write(root / "modeling/ssd.py", "depth = 1\n")
    write(root / "training/trainer.py", "steps = 1\n")
    write(root / "stages/train.py", "stage = 1\n")
    write(root / "stages/evaluate.py", "other = 1\n")
    return root


def shards(folder: Path) -> list[Path]:
    return [write(folder / f"train-0000{index}-of-00002.tfrecord", f"records {index}") for index in range(2)]


def test_fingerprint_is_stable(tmp_path):
    root, files = code_tree(tmp_path / "code"), shards(tmp_path / "prepared")
    first = train.training_fingerprint(RUN_CONFIG, files, root)
    assert train.training_fingerprint(dict(RUN_CONFIG), list(reversed(files)), root) == first


def test_fingerprint_tracks_training_code(tmp_path):
    root, files = code_tree(tmp_path / "code"), shards(tmp_path / "prepared")
    first = train.training_fingerprint(RUN_CONFIG, files, root)
    write(root / "modeling/ssd.py", "depth = 2\n")
    assert train.training_fingerprint(RUN_CONFIG, files, root) != first


def test_fingerprint_tracks_new_module(tmp_path):
    root, files = code_tree(tmp_path / "code"), shards(tmp_path / "prepared")
    first = train.training_fingerprint(RUN_CONFIG, files, root)
    write(root / "training/sampling.py", "threshold = 0\n")
    assert train.training_fingerprint(RUN_CONFIG, files, root) != first


def test_fingerprint_ignores_other_code(tmp_path):
    root, files = code_tree(tmp_path / "code"), shards(tmp_path / "prepared")
    first = train.training_fingerprint(RUN_CONFIG, files, root)
    write(root / "stages/evaluate.py", "other = 2\n")
    write(root / "training/notes.txt", "not source\n")
    assert train.training_fingerprint(RUN_CONFIG, files, root) == first


def test_fingerprint_tracks_shards(tmp_path):
    root, files = code_tree(tmp_path / "code"), shards(tmp_path / "prepared")
    first = train.training_fingerprint(RUN_CONFIG, files, root)
    write(files[1], "records 1, re-prepared")
    assert train.training_fingerprint(RUN_CONFIG, files, root) != first


def test_fingerprint_tracks_config(tmp_path):
    root, files = code_tree(tmp_path / "code"), shards(tmp_path / "prepared")
    first = train.training_fingerprint(RUN_CONFIG, files, root)
    assert train.training_fingerprint({**RUN_CONFIG, "seed": 1}, files, root) != first


def test_files_digest_names_the_files(tmp_path):
    # Same bytes under another name must not collide.
    first = write(tmp_path / "a/x.py", "same")
    second = write(tmp_path / "b/x.py", "same")
    assert runinfo.files_digest([first], tmp_path) != runinfo.files_digest([second], tmp_path)


def test_package_training_code_exists():
    for name in train.TRAINING_CODE:
        assert (train.PACKAGE_ROOT / name).exists(), name


def test_training_code_matches_dvc_deps():
    # The fingerprint must cover what DVC reruns the train stage for.
    stages = yaml.safe_load((train.PACKAGE_ROOT.parents[1] / "dvc.yaml").read_text())["stages"]
    code_deps = {dep for dep in stages["train"]["do"]["deps"] if dep.startswith("src/blindspots/")}
    assert code_deps == {f"src/blindspots/{name}" for name in train.TRAINING_CODE}
