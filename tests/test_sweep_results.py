"""The collector on a tiny real sweep: one row per run x dev evaluation, against the run files."""

import json
import os

import pytest

from bert_nlu import io_utils, sweep_results


@pytest.fixture(scope="module")
def collected(tiny_sweep):
  _, runs_root, planned = tiny_sweep
  return sweep_results.collect_sweep(os.path.join(runs_root, "tiny")), planned


def test_collected_runs_hold_the_final_metrics_and_the_dev_curve(collected):
  results, planned = collected
  assert results["sweep"] == "tiny" and results["grid_flags"] == ["learning_rate"]
  by_name = {run["name"]: run for run in results["runs"]}
  for run in planned:
    record = by_name[run.request.name]
    eval_results = io_utils.read_json(os.path.join(run.run_dir, "eval_results.json"))
    assert record["hash"] == run.run_hash and record["seed"] == run.seed
    assert record["final"]["dev"]["whole_frame_accuracy"] == \
        eval_results["splits"]["dev"]["whole_frame_accuracy"]
    assert record["best_step"] == eval_results["best_step"]
    assert record["train_seconds"] == eval_results["training"]["wall_seconds"]
    assert record["train_batch_size"] == 16 and record["selected_by"] == "whole_frame_accuracy"
    assert record["train_examples_per_second"] == \
        eval_results["training"]["train_examples_per_second"]
    assert record["parameters"] == eval_results["model"]["parameters"] > 0
    assert record["trainable_parameters"] == eval_results["model"]["trainable_parameters"]
    for intent, row in eval_results["splits"]["dev"]["per_intent"].items():
      assert record["final"]["dev"][f"per_intent.{intent}.slot_f1"] == row["slot_f1"]
    # Checkpoints every 10 steps of 19: dev evaluated at steps 10 and 19.
    assert [e["step"] for e in record["evaluations"]] == [10, 19]
    best = [e for e in record["evaluations"] if e["step"] == record["best_step"]][0]
    assert best["whole_frame_accuracy"] == pytest.approx(
        eval_results["splits"]["dev"]["whole_frame_accuracy"], abs=1e-6)
  assert by_name["lr2e-3_i0"]["learning_rate"] == 2e-3


def test_dataframe_has_one_row_per_run_and_evaluation(collected):
  results, _ = collected
  frame = sweep_results.to_dataframe(results)
  assert len(frame) == sum(len(run["evaluations"]) for run in results["runs"]) == 4
  assert list(frame["step"]) == [10, 19, 10, 19]
  assert list(frame["examples_seen"]) == [160, 304, 160, 304]
  assert list(frame["learning_rate"]) == [1e-3, 1e-3, 2e-3, 2e-3]
  assert set(frame["instance"]) == {0} and set(frame["task"]) == {"tiny_corpus0"}
  for column in ("whole_frame_accuracy", "final_whole_frame_accuracy", "train_minutes", "run",
                 "train_examples_per_second", "parameters",
                 "final_per_intent.PlayMusic.whole_frame_accuracy"):
    assert column in frame


def test_results_survive_a_save_and_load_without_the_run_directories(collected, tmp_path):
  results, _ = collected
  path = str(tmp_path / "sweeps" / "tiny.json")
  sweep_results.save_results(results, path)
  loaded = sweep_results.load_results(path)
  assert loaded == json.loads(json.dumps(results))
  assert sweep_results.to_dataframe(loaded).equals(sweep_results.to_dataframe(results))


def test_scalar_metrics_flatten_the_per_intent_table():
  values = {"intent_accuracy": 0.5, "num_examples": 4, "per_slot": {"x": {"f1": 1.0}},
            "per_intent": {"A": {"count": 3, "slot_f1": 0.25}, "B": {"slot_f1": 1}},
            "confusion_matrix": [[1, 0], [0, 1]], "selected": True}
  assert sweep_results.scalar_metrics(values) == {
      "intent_accuracy": 0.5, "num_examples": 4.0, "per_intent.A.count": 3.0,
      "per_intent.A.slot_f1": 0.25, "per_intent.B.slot_f1": 1.0}


def test_grid_values_are_typed():
  assert sweep_results.parse_value("32") == 32
  assert sweep_results.parse_value("1e-4") == 1e-4
  assert sweep_results.parse_value("MRPC") == "MRPC"


def test_recorded_runs_index_finished_runs_by_hash_across_results_files(tmp_path):
  finished = {"name": "a_i0", "hash": "h1", "final": {"dev": {"accuracy": 0.8}}}
  unfinished = {"name": "b_i0", "hash": "h2", "final": {}}
  sweep_results.save_results({"sweep": "one", "runs": [finished, unfinished]},
                             str(tmp_path / "one.json"))
  later = dict(finished, name="other_name")
  sweep_results.save_results({"sweep": "two", "runs": [later, {**finished, "hash": "h3"}]},
                             str(tmp_path / "two.json"))
  (tmp_path / "notes.txt").write_text("not a results file")
  recorded = sweep_results.recorded_runs(str(tmp_path))
  assert sorted(recorded) == ["h1", "h3"]  # h2 never finished
  assert recorded["h1"].path == str(tmp_path / "one.json")  # the first file in name order
  run = recorded["h1"].as_run_of({"name": "x_i1", "variant": "x", "grid": {"lr": "1"},
                                  "instance": 1, "seed": 43})
  assert (run["name"], run["instance"], run["seed"], run["final"]) == (
      "x_i1", 1, 43, finished["final"])
  assert run["recorded_in"] == str(tmp_path / "one.json")
  assert sweep_results.recorded_runs(str(tmp_path / "absent")) == {}
  assert sweep_results.recorded_runs("") == {}


def test_an_unreadable_results_file_is_an_error_naming_it(tmp_path):
  (tmp_path / "broken.json").write_text("{not json")
  with pytest.raises(sweep_results.InputError, match="broken.json"):
    sweep_results.recorded_runs(str(tmp_path))
