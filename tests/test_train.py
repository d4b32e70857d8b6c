"""The train stage on the tiny preset: outputs, determinism, resume and distribution."""

import json
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from conftest import clone_workspace, run_cli

pytestmark = pytest.mark.slow
RUN = ("train", "--variant", "tf_same_even", "--seed", "0")


def weights(workdir):
    """Every array of the saved model weights, keyed by its HDF5 path."""
    arrays = {}
    with h5py.File(workdir / "models/tf_same_even/seed_0/model.weights.h5", "r") as handle:
        handle.visititems(lambda name, item: arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
    return arrays


def assert_same_weights(first, second):
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)


def assert_some_weights_differ(reference, changed):
    assert reference.keys() == changed.keys()
    assert any(not np.array_equal(reference[name], changed[name]) for name in reference)


@pytest.fixture(scope="module")
def trained(tiny_prepared, tmp_path_factory):
    workdir = clone_workspace(tiny_prepared, tmp_path_factory.mktemp("trained") / "ws")
    run_cli(workdir, *RUN, "train.steps=6")
    return workdir


def test_train_writes_outputs(trained):
    model_dir = trained / "models/tf_same_even/seed_0"
    for name in ("model.weights.h5", "model.json", "train_summary.json", "run.json"):
        assert (model_dir / name).is_file(), name
    summary = json.loads((model_dir / "train_summary.json").read_text())
    assert summary["steps"] == 6
    assert summary["resumed_from_step"] == 0
    # The tiny preset warm-starts the backbone for 3 steps on light crops.
    assert summary["pretrain"]["steps"] == 3
    assert summary["pretrain"]["crops"] == sum(summary["pretrain"]["crops_by_label"]) > 0
    record = json.loads((model_dir / "run.json").read_text())
    assert record["config"]["model"]["padding"] == "tf_same"
    assert "tensorflow" in record["packages"]
    assert (trained / "runs/tf_same_even/seed_0/train/dvclive/plots/metrics/train/loss.tsv").is_file()


def test_train_is_deterministic(trained, tiny_prepared, tmp_path):
    again = clone_workspace(tiny_prepared, tmp_path / "again")
    run_cli(again, *RUN, "train.steps=6")
    assert_same_weights(weights(trained), weights(again))


def test_killed_run_resumes_to_same_weights(trained, tiny_prepared, tmp_path):
    workdir = clone_workspace(tiny_prepared, tmp_path / "killed")
    # The manager writes its `checkpoint` state file after the checkpoint
    # data, so its presence means a complete checkpoint exists.
    checkpoint = workdir / "runs/tf_same_even/seed_0/train/checkpoints/checkpoint"
    process = subprocess.Popen(
        [sys.executable, "-m", "blindspots.cli", *RUN, "train.steps=6", "train.checkpoint_every=2"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists(), "training ended before writing its first checkpoint"
    assert not (workdir / "models/tf_same_even/seed_0").exists(), "the killed run must not leave a model behind"

    run_cli(workdir, *RUN, "train.steps=6", "train.checkpoint_every=2")
    summary = json.loads((workdir / "models/tf_same_even/seed_0/train_summary.json").read_text())
    assert 2 <= summary["resumed_from_step"] < 6
    assert summary["pretrain"] is None, "a resumed run restores the warm-started weights instead of pretraining again"
    assert_same_weights(weights(trained), weights(workdir))


def test_changed_config_does_not_resume(trained, tiny_prepared, tmp_path):
    workdir = clone_workspace(tiny_prepared, tmp_path / "changed")
    run_cli(workdir, *RUN, "train.steps=4")
    run_cli(workdir, *RUN, "train.steps=4", "train.learning_rate=0.001")
    summary = json.loads((workdir / "models/tf_same_even/seed_0/train_summary.json").read_text())
    assert summary["resumed_from_step"] == 0


def test_clipping_and_repeat_sampling(trained, tiny_prepared, tmp_path):
    workdir = clone_workspace(tiny_prepared, tmp_path / "options")
    result = run_cli(workdir, *RUN, "train.steps=6", "train.clip_norm=0.001", "train.repeat_factor_threshold=1.0")
    assert "repeat-factor sampling at threshold 1" in result.stderr
    assert_some_weights_differ(weights(trained), weights(workdir))


def test_class_weights_change_training(trained, tiny_prepared, tmp_path):
    workdir = clone_workspace(tiny_prepared, tmp_path / "weighted")
    result = run_cli(workdir, *RUN, "train.steps=6", "model.class_weights.Off=4.0", "model.class_weights.Red=0.5")
    assert "class weights in the classification loss: Off 4, Green 1, Yellow 1, Red 0.5" in result.stderr
    assert_some_weights_differ(weights(trained), weights(workdir))


def test_pretraining_changes_the_backbone(trained, tiny_prepared, tmp_path):
    workdir = clone_workspace(tiny_prepared, tmp_path / "cold")
    run_cli(workdir, *RUN, "train.steps=6", "train.pretrain.steps=0")
    summary = json.loads((workdir / "models/tf_same_even/seed_0/train_summary.json").read_text())
    assert summary["pretrain"] is None
    from blindspots.modeling.export import load_model

    warm, _, _ = load_model(trained / "models/tf_same_even/seed_0")
    cold, _, _ = load_model(workdir / "models/tf_same_even/seed_0")
    for name in ("Conv2d_0", "Conv2d_11_pointwise"):
        assert not np.array_equal(warm.get_layer(name).get_weights()[0], cold.get_layer(name).get_weights()[0]), name


def test_mirrored_on_two_cpus(tiny_prepared, tmp_path):
    workdir = clone_workspace(tiny_prepared, tmp_path / "mirrored")
    result = run_cli(workdir, *RUN, "train.steps=2", "train.strategy=mirrored", "train.cpu_devices=2")
    assert "replicas: 2" in result.stderr
    assert (workdir / "models/tf_same_even/seed_0/model.weights.h5").is_file()


def test_unknown_seed_rejected(tiny_prepared):
    result = run_cli(tiny_prepared, "train", "--variant", "tf_same_even", "--seed", "5", check=False)
    assert result.returncode == 2
    assert "seed 5 is not listed for variant 'tf_same_even'" in result.stderr
