"""HParams summaries: what a run writes, read back with TensorBoard's own event reader."""

import os

import pytest
from tensorboard.backend.event_processing import event_multiplexer
from tensorboard.plugins.hparams import metadata

from bert_nlu import hparams, io_utils


def _read(logdir):
  multiplexer = event_multiplexer.EventMultiplexer()
  multiplexer.AddRunsFromDirectory(logdir)
  multiplexer.Reload()
  return multiplexer


CONFIG = {
    "output_dir": "/runs/x", "intra_op_threads": 1, "run_train": True,
    "data": {"data_dir": "/data/glue/MRPC/", "max_seq_length": 64, "cache_dir": ""},
    "model": {"vocab_file": "/w/vocab.txt", "num_hidden_layers": None, "slot_crf": False},
    "train": {"learning_rate": 2e-4, "train_batch_size": 16, "optimizer_implementation": "fused"},
    "profile": {"steps": [3, 4], "profile_dir": ""},
}


def test_hparams_of_config_keeps_scalar_settings_but_paths_and_execution():
  assert hparams.hparams_of_config(CONFIG) == {
      "run_train": True, "data.max_seq_length": 64, "model.slot_crf": False,
      "train.learning_rate": 2e-4, "train.train_batch_size": 16,
      "train.optimizer_implementation": "fused", "profile.steps": "[3, 4]", "data_dir": "MRPC"}


def test_hparams_summary_and_final_metrics_are_written_for_the_dashboard(tmp_path):
  results = {"best_step": 30, "splits": {"dev": {"accuracy": 0.75, "per_intent": {"a": 1.0},
                                                  "num_examples": 408}}}
  path = hparams.write_hparams_summary(str(tmp_path), CONFIG, results)
  assert os.path.dirname(path) == str(tmp_path)
  multiplexer = _read(str(tmp_path))
  content = multiplexer.PluginRunToTagToContent(metadata.PLUGIN_NAME)["."]
  start_info = metadata.parse_session_start_info_plugin_data(
      content[metadata.SESSION_START_INFO_TAG])
  assert start_info.hparams["train.learning_rate"].number_value == 2e-4
  assert start_info.hparams["data_dir"].string_value == "MRPC"
  assert start_info.hparams["model.slot_crf"].bool_value is False
  scalars = {tag: multiplexer.Scalars(".", tag) for tag in multiplexer.Runs()["."]["scalars"]}
  assert set(scalars) == {"final/dev/accuracy", "final/dev/num_examples"}
  assert [(e.step, e.value) for e in scalars["final/dev/accuracy"]] == [(30, 0.75)]


def test_a_sweep_directory_shows_every_run_in_the_hparams_dashboard(tiny_sweep):
  _, runs_root, planned = tiny_sweep
  # TensorBoard pointed at the sweep directory follows its named symlinks to the runs.
  multiplexer = _read(os.path.join(runs_root, "tiny"))
  sessions = multiplexer.PluginRunToTagToContent(metadata.PLUGIN_NAME)
  assert sorted(sessions) == ["lr1e-3_i0", "lr2e-3_i0"]
  for run in planned:
    name = run.request.name
    results = io_utils.read_json(os.path.join(run.run_dir, "eval_results.json"))
    start_info = metadata.parse_session_start_info_plugin_data(
        sessions[name][metadata.SESSION_START_INFO_TAG])
    assert start_info.hparams["train.learning_rate"].number_value == pytest.approx(
        results["config"]["train"]["learning_rate"])
    whole_frame = multiplexer.Scalars(name, "final/dev/whole_frame_accuracy")
    assert whole_frame[-1].value == pytest.approx(
        results["splits"]["dev"]["whole_frame_accuracy"])
    assert whole_frame[-1].step == results["best_step"]
    assert f"{name}/eval_dev" in multiplexer.Runs()  # the dev curves, as metric columns
