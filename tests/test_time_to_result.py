"""bench/time_to_result.py's pure parts: the subset corpus, the command it times, the summary.

(The benchmark itself trains real models; a smoke run is documented in README.)
"""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))

import time_to_result  # noqa: E402  pylint: disable=g-import-not-at-top


def _run(system, cache, to_best, steps, examples_per_second):
  seconds = {part: 1.0 for part in time_to_result.PARTS}
  seconds.update(to_best_model=to_best, training_steps=steps, data_preparation=steps / 10)
  return {"system": system, "cache": cache, "seconds": seconds,
          "train_examples_per_second": examples_per_second}


def test_summary_takes_medians_of_warm_runs_and_the_speedup_against_the_peer():
  runs = [_run("ours (in_process)", "cold", 100.0, 50.0, 90.0),
          _run("ours (in_process)", "warm", 60.0, 40.0, 100.0),
          _run("ours (in_process)", "warm", 80.0, 44.0, 110.0),
          _run("peer (pytorch)", None, 150.0, 90.0, 70.0),
          _run("peer (pytorch)", None, 130.0, 80.0, 75.0)]
  summary = time_to_result.summarize(runs)
  ours = summary["ours (in_process)"]
  assert ours["runs"] == 3
  assert ours["median_seconds"]["to_best_model"] == 70.0  # (60 + 80) / 2, the cold run left out
  assert ours["median_seconds"]["training_steps"] == 42.0
  assert ours["cold_data_preparation_seconds"] == 5.0
  assert ours["train_examples_per_second"] == 105.0
  assert summary["peer (pytorch)"]["median_seconds"]["to_best_model"] == 140.0
  assert ours["speedup_vs_peer_to_best_model"] == pytest.approx(140.0 / 70.0)
  assert "speedup_vs_peer_to_best_model" not in summary["peer (pytorch)"]
  table = time_to_result.format_table({"summary": summary})
  assert "2.00x the peer" in table and "data prep cold 5.0s" in table



def test_real_loop_steady_state_is_compared_with_the_microbenchmark_of_the_same_run():
  micro = time_to_result.MICROBENCHMARK
  runs = [dict(_run("ours (in_process)", "cold", 100.0, 50.0, 90.0),
               steady_examples_per_second=47.0),
          dict(_run("ours (in_process)", "warm", 90.0, 45.0, 95.0),
               steady_examples_per_second=49.0),
          {"system": micro, "cache": None, "steady_examples_per_second": 52.0},
          {"system": micro, "cache": None, "steady_examples_per_second": 48.0}]
  summary = time_to_result.summarize(runs)
  assert summary[micro] == {"runs": 2, "steady_examples_per_second": 50.0}
  ours = summary["ours (in_process)"]
  assert ours["steady_examples_per_second"] == 49.0  # warm runs only
  assert ours["steady_over_microbenchmark"] == pytest.approx(49.0 / 50.0)
  table = time_to_result.format_table({"summary": summary})
  assert "98.0% of the microbenchmark's 50.0" in table
  assert micro not in table.splitlines()[1]  # the microbenchmark has no row of wall times

def test_subset_corpus_keeps_the_first_lines_of_each_split(tmp_path):
  from bert_nlu import testing  # pylint: disable=g-import-not-at-top
  source = testing.make_corpus(str(tmp_path / "full"))
  subset = time_to_result.write_subset_corpus(source, str(tmp_path / "subset"), 7, 3)
  for split, count in (("train", 7), ("dev", 3), ("test", 3)):
    for name in ("seq.in", "seq.out", "label"):
      full = open(os.path.join(source, split, name)).read().splitlines()
      assert open(os.path.join(subset, split, name)).read().splitlines() == full[:count]


def test_evaluation_interval_of_the_timed_command():
  class Args:  # the parsed arguments the command is built from
    bert_dir, work_dir, epochs, seed, recipe = "/b", "/w", 3, 42, "plain"
  in_process = time_to_result.ours_command(Args, "/c", "/o", "in_process", 409)
  checkpoint = time_to_result.ours_command(Args, "/c", "/o", "checkpoint", 409)
  assert "--eval_every_steps=409" in in_process and "--save_checkpoints_steps=1000" in in_process
  assert "--save_checkpoints_steps=409" in checkpoint
  assert not any(a.startswith("--eval_every_steps") for a in checkpoint)
  assert "--num_train_epochs=3" in in_process and "--learning_rate=2e-4" in in_process
  Args.recipe = "snips_published"
  published = time_to_result.ours_command(Args, "/c", "/o", "in_process", 409)
  assert "--flagfile=configs/snips.cfg" in published and "--eval_every_steps=400" in published


def test_startup_split_runs_from_the_command_to_the_first_step():
  results = {"run_started_unix_time": 1003.0,
             "phase_seconds": {"read_corpus": 1.5, "data_cache": 0.5, "train_and_evaluate": 50.0,
                               "evaluate_best": 4.0},
             "training": {"startup_seconds": {"graph_and_session": 6.0, "first_step": 2.0},
                          "first_step_end_unix_time": 1013.0}}
  split = time_to_result.startup_split(results, launched=1000.0)
  assert split == {"imports_and_flags": 3.0, "data_preparation": 2.0, "graph_and_session": 6.0,
                   "first_step": 2.0, "command_to_first_step": 13.0}
  runs = [dict(_run("ours (in_process)", cache, 60.0, 40.0, 100.0),
               startup=dict(split, command_to_first_step=total))
          for cache, total in (("cold", 20.0), ("warm", 13.0), ("warm", 15.0))]
  startup = time_to_result.summarize(runs)["ours (in_process)"]["startup_seconds"]
  assert startup["warm_cache_median"]["command_to_first_step"] == 14.0
  assert startup["cold_cache"]["command_to_first_step"] == 20.0
  table = time_to_result.format_table({"summary": time_to_result.summarize(runs)})
  assert "start-up, warm cache median: imports_and_flags 3.0s" in table
