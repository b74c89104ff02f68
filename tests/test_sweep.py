"""The sweep engine on tiny real runs: reuse, added grid values, resume after a kill, shared runs."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bert_nlu import io_utils, run_identity, sweep, sweep_report, sweep_results, sweep_spec
from bert_nlu.errors import InputError
from bert_nlu.testing import write_tiny_sweep_file

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _results_mtimes(planned):
  return {run.run_hash: os.path.getmtime(os.path.join(run.run_dir, "eval_results.json"))
          for run in planned}


def _start_sweep_until_checkpoint(sweep_file, runs_root, run_dir):
  """Starts `python -m bert_nlu.sweep` (text output piped); returns the process once the run in
  `run_dir` has saved its step-10 checkpoint (the trainer is then running)."""
  command = [sys.executable, "-m", "bert_nlu.sweep", sweep_file, f"--runs_root={runs_root}",
             "--recorded_results="]
  env = dict(os.environ, PYTHONPATH=REPO_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
  process = subprocess.Popen(command, cwd=REPO_DIR, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
  deadline = time.time() + 600
  while not os.path.exists(os.path.join(run_dir, "model.ckpt-10.index")):
    assert process.poll() is None, process.stdout.read()
    assert time.time() < deadline, "no checkpoint within 10 minutes"
    time.sleep(0.2)
  return process


def test_the_sweep_trains_every_run_once_in_its_hashed_directory(tiny_sweep):
  _, runs_root, planned = tiny_sweep
  assert [run.state for run in planned] == [sweep.DONE, sweep.DONE]
  assert [run.request.name for run in planned] == ["lr1e-3_i0", "lr2e-3_i0"]
  for run in planned:
    assert os.path.basename(run.run_dir) == run.run_hash
    assert run.run_hash == run_identity.identity_hash(run.identity)
    results = io_utils.read_json(os.path.join(run.run_dir, "eval_results.json"))
    assert results["training"]["num_train_steps"] == 19  # ceil(150 * 2 / 16)
    assert results["config"]["intra_op_threads"] == 1  # 2 cores, 2 runs at once
    link = os.path.join(runs_root, "tiny", run.request.name)
    assert os.path.realpath(link) == os.path.realpath(run.run_dir)
  index = io_utils.read_json(os.path.join(runs_root, "tiny", "index.json"))
  assert [entry["state"] for entry in index["runs"]] == ["done", "done"]
  assert index["runs"][1]["grid"] == {"learning_rate": "2e-3"}
  assert planned[0].config["train"]["learning_rate"] == 1e-3
  assert planned[1].config["train"]["learning_rate"] == 2e-3


def test_a_second_call_trains_nothing(tiny_sweep):
  sweep_file, runs_root, planned = tiny_sweep
  before = _results_mtimes(planned)
  again = sweep.plan_sweep(sweep_spec.read_sweep_file(sweep_file), runs_root)
  assert [run.state for run in again] == [sweep.REUSED, sweep.REUSED]
  assert [run.run_hash for run in again] == [run.run_hash for run in planned]
  lines = []
  progress = sweep.run_all(again, parallel=1, threads=sweep.thread_counts(1, 2), emit=lines.append)
  assert progress.counts()[sweep.REUSED] == 2 and progress.counts()[sweep.DONE] == 0
  assert _results_mtimes(planned) == before
  assert lines == ["2 runs | 0 done, 2 reused, 0 left"]


def test_another_sweep_with_the_same_configuration_shares_its_run(tiny_sweep, tmp_path,
                                                                   tiny_bert_dir,
                                                                   tiny_corpus_dir):
  _, runs_root, planned = tiny_sweep
  # Other spellings of the same values, and a default spelled out: the same configuration.
  other = write_tiny_sweep_file(str(tmp_path / "other.sweep"), "other", tiny_bert_dir,
                                tiny_corpus_dir + "/", learning_rates=("0.001",),
                                extra_flags=("--warmup_proportion=0.1", "--nofp16"))
  spec = sweep_spec.read_sweep_file(other)
  shared = sweep.plan_sweep(spec, runs_root)
  assert [run.state for run in shared] == [sweep.REUSED]
  assert shared[0].run_hash == planned[0].run_hash
  sweep_dir = sweep.write_index(spec, shared, runs_root)
  assert (os.path.realpath(os.path.join(sweep_dir, "lr0.001_i0"))
          == os.path.realpath(planned[0].run_dir))


def test_an_added_grid_value_trains_only_it_and_a_killed_run_resumes(tiny_sweep, tmp_path,
                                                                     tiny_bert_dir,
                                                                     tiny_corpus_dir):
  _, runs_root, planned = tiny_sweep
  before = _results_mtimes(planned)
  grown = write_tiny_sweep_file(str(tmp_path / "tiny.sweep"), "tiny", tiny_bert_dir,
                                tiny_corpus_dir, learning_rates=("1e-3", "2e-3", "3e-3"))
  spec = sweep_spec.read_sweep_file(grown)
  plan = sweep.plan_sweep(spec, runs_root)
  assert [run.state for run in plan] == [sweep.REUSED, sweep.REUSED, sweep.LEFT]
  new_run = plan[2]
  # Start the sweep command, kill it (and its trainer) once the new run saved a checkpoint.
  process = _start_sweep_until_checkpoint(grown, runs_root, new_run.run_dir)
  trainer_pid = json.loads(open(os.path.join(new_run.run_dir, ".lock")).read())["pid"]
  process.kill()
  os.kill(trainer_pid, signal.SIGKILL)
  process.wait()
  process.stdout.close()
  assert not os.path.exists(os.path.join(new_run.run_dir, "eval_results.json"))

  resumed = sweep.plan_sweep(spec, runs_root)
  assert [run.state for run in resumed] == [sweep.REUSED, sweep.REUSED, sweep.LEFT]
  assert sweep.describe_plan(resumed).splitlines()[2].endswith("resumes")
  lines = []
  progress = sweep.run_all(resumed, parallel=1, threads=sweep.thread_counts(1, 2),
                           emit=lines.append)
  assert progress.counts() == {"done": 1, "reused": 2, "recorded": 0, "running": 0, "waiting": 0,
                               "left": 0, "stopped": 0, "failed": 0}
  assert any("resuming lr3e-3_i0" in line for line in lines)
  results = io_utils.read_json(os.path.join(new_run.run_dir, "eval_results.json"))
  assert results["training"]["steps_run_this_session"] < results["training"]["num_train_steps"]
  assert results["best_step"] in (10, 19)
  assert _results_mtimes(planned) == before  # the two first runs were not retrained
  # Back to the 2-run sweep for the other users of the session fixture (collector, HParams).
  sweep.write_index(sweep_spec.read_sweep_file(tiny_sweep[0]), planned, runs_root)


def test_a_sweep_asked_to_stop_reports_its_run_stopped_and_keeps_the_checkpoint(
    tiny_sweep, tmp_path, tiny_bert_dir, tiny_corpus_dir):
  """SIGTERM to the sweep: the trainer checkpoints and stops, the run is reported "stopped" (not
  failed) in the output and the index, the sweep exits 1, and a new plan resumes the run."""
  _, runs_root, _ = tiny_sweep
  long_file = write_tiny_sweep_file(str(tmp_path / "stop.sweep"), "stop", tiny_bert_dir,
                                    tiny_corpus_dir, learning_rates=("5e-3",),
                                    extra_flags=("--num_train_epochs=50",))
  spec = sweep_spec.read_sweep_file(long_file)
  run = sweep.plan_sweep(spec, runs_root)[0]
  process = _start_sweep_until_checkpoint(long_file, runs_root, run.run_dir)
  process.send_signal(signal.SIGTERM)
  output, _ = process.communicate(timeout=600)
  assert process.returncode == 1, output
  assert "stopped lr5e-3_i0" in output and "its checkpoint is kept" in output, output
  assert "FAILED" not in output, output
  assert "0 done, 0 left, 1 stopped" in output, output
  index = io_utils.read_json(os.path.join(runs_root, "stop", "index.json"))
  assert [entry["state"] for entry in index["runs"]] == ["stopped"]
  assert not os.path.exists(os.path.join(run.run_dir, "eval_results.json"))
  again = sweep.plan_sweep(spec, runs_root)
  assert again[0].run_hash == run.run_hash
  assert sweep.describe_plan(again).splitlines()[0].endswith("resumes")


def test_index_only_lists_the_runs_other_sweeps_trained_and_trains_nothing(tiny_sweep, tmp_path,
                                                                         tiny_bert_dir,
                                                                         tiny_corpus_dir):
  """A grid split between two jobs: the whole sweep's index, written without training, names the
  runs the parts finished and the one not trained yet, and the collector reads it."""
  _, runs_root, planned = tiny_sweep
  before = _results_mtimes(planned)
  whole = write_tiny_sweep_file(str(tmp_path / "whole.sweep"), "whole", tiny_bert_dir,
                                tiny_corpus_dir, learning_rates=("1e-3", "2e-3", "4e-3"))
  command = [sys.executable, "-m", "bert_nlu.sweep", whole, f"--runs_root={runs_root}",
             "--recorded_results=", "--index_only"]
  env = dict(os.environ, PYTHONPATH=REPO_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
  result = subprocess.run(command, cwd=REPO_DIR, env=env, capture_output=True, text=True,
                          check=False)
  assert result.returncode == 0, result.stdout + result.stderr
  assert "3 runs: 1 new, 2 reused; nothing trained" in result.stdout
  index = io_utils.read_json(os.path.join(runs_root, "whole", "index.json"))
  assert [entry["state"] for entry in index["runs"]] == ["reused", "reused", "left"]
  untrained = os.path.join(runs_root, "runs", index["runs"][2]["hash"])
  assert not os.path.exists(untrained)
  assert _results_mtimes(planned) == before
  collected = sweep_results.collect_sweep(os.path.join(runs_root, "whole"))
  assert [run["hash"] for run in collected["runs"]] == [run.run_hash for run in planned]
  assert collected["missing"] == ["lr4e-3_i0"]


def test_flags_that_are_not_run_flags_or_do_not_resolve_are_errors(tmp_path, tiny_bert_dir,
                                                                    tiny_corpus_dir):
  from bert_nlu.errors import InputError  # pylint: disable=g-import-not-at-top
  unknown = write_tiny_sweep_file(str(tmp_path / "a.sweep"), "a", tiny_bert_dir, tiny_corpus_dir,
                                  extra_flags=("--parallel=2",))
  with pytest.raises(InputError, match="--parallel is not a flag of run_bert_nlu.py"):
    sweep.plan_sweep(sweep_spec.read_sweep_file(unknown), str(tmp_path / "runs"))
  invalid = write_tiny_sweep_file(str(tmp_path / "b.sweep"), "b", tiny_bert_dir, tiny_corpus_dir,
                                  learning_rates=("-1",))
  with pytest.raises(run_identity.ConfigurationError, match="--learning_rate must be finite"):
    sweep.plan_sweep(sweep_spec.read_sweep_file(invalid), str(tmp_path / "runs"))
  same = write_tiny_sweep_file(str(tmp_path / "c.sweep"), "c", tiny_bert_dir, tiny_corpus_dir,
                               learning_rates=("1e-4", "0.0001"))
  with pytest.raises(InputError, match="resolve to the same configuration"):
    sweep.plan_sweep(sweep_spec.read_sweep_file(same), str(tmp_path / "runs"))


def test_threads_are_divided_between_parallel_runs():
  assert sweep.thread_counts(1, 0) == {"intra_op_threads": 0, "inter_op_threads": 0}
  assert sweep.thread_counts(1, 1) == {"intra_op_threads": 1, "inter_op_threads": 1}
  assert sweep.thread_counts(2, 0) == sweep.thread_counts(2, os.cpu_count())
  assert sweep.thread_counts(2, 2) == {"intra_op_threads": 1, "inter_op_threads": 1}
  assert sweep.thread_counts(2, 8) == {"intra_op_threads": 4, "inter_op_threads": 4}
  assert sweep.thread_counts(4, 2) == {"intra_op_threads": 1, "inter_op_threads": 1}


def test_progress_estimates_the_time_left_from_finished_runs():
  def planned(state, seconds=None):
    request = sweep_spec.RunRequest("r", "", {}, 0, ())
    return sweep.PlannedRun(request, [], 0, {}, {}, "h", "d", state=state, seconds=seconds)

  runs = [planned(sweep.DONE, 60.0), planned(sweep.DONE, 180.0), planned(sweep.REUSED),
          planned(sweep.RUNNING), planned(sweep.LEFT), planned(sweep.LEFT)]
  progress = sweep.Progress(runs, parallel=2, emit=lambda line: None)
  # mean 120 s x (2 left + half of 1 running) / 2 at a time
  assert progress.seconds_left() == pytest.approx(150.0)
  assert progress.summary() == "2 done, 1 reused, 1 running, 2 left; ~2.5 min left"
  assert sweep.Progress(runs[2:], 1).seconds_left() is None


def _stage_two_file(path, name, tiny_bert_dir, tiny_corpus_dir, references):
  """A sweep continuing from runs of the tiny sweep: one variant per referenced run."""
  lines = [f"name = {name}", "[flags]", f"--bert_dir={tiny_bert_dir}",
           f"--data_dir={tiny_corpus_dir}", "--max_seq_length=16", "--num_train_epochs=1",
           "--keep_init_labels", "--limit_data=PlayMusic,3"]
  for index, reference in enumerate(references):
    lines += [f"[variant from{index}]", f"--init_checkpoint={reference}"]
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  return path


def test_a_run_reference_resolves_to_a_finished_run_of_another_sweep(tiny_sweep, tmp_path,
                                                                     tiny_bert_dir,
                                                                     tiny_corpus_dir):
  _, runs_root, planned = tiny_sweep
  assert sweep.resolve_run_reference("@tiny/lr2e-3_i0", runs_root) == os.path.abspath(
      planned[1].run_dir)
  stage_two = _stage_two_file(str(tmp_path / "two.sweep"), "two", tiny_bert_dir,
                              tiny_corpus_dir, ["@tiny/lr1e-3_i0", "@tiny/lr2e-3_i0"])
  plan = sweep.plan_sweep(sweep_spec.read_sweep_file(stage_two), runs_root)
  for run, source in zip(plan, planned):
    assert run.config["model"]["init_run_dir"] == os.path.abspath(source.run_dir)
    assert run.config["model"]["keep_init_labels"] is True
    assert f"--init_checkpoint={os.path.abspath(source.run_dir)}" in run.argv
    assert run.state == sweep.LEFT
  # Another upstream run is another configuration: its content is in the identity.
  assert plan[0].run_hash != plan[1].run_hash
  assert sweep.expand_references(["--seed=3", "--distill_teachers=@tiny/lr1e-3_i0,x"],
                                 runs_root) == [
      "--seed=3", f"--distill_teachers={os.path.abspath(planned[0].run_dir)},x"]


def test_a_reference_to_a_missing_or_unfinished_run_is_a_clear_error(tiny_sweep, tmp_path,
                                                                     tiny_bert_dir,
                                                                     tiny_corpus_dir):
  from bert_nlu.errors import InputError  # pylint: disable=g-import-not-at-top
  _, runs_root, _ = tiny_sweep
  with pytest.raises(sweep.UnfinishedReference, match="sweep 'stage1' has not run under"):
    sweep.resolve_run_reference("@stage1/ep1_i0", runs_root)
  with pytest.raises(sweep.UnfinishedReference,
                     match="sweep 'tiny' has no run named 'lr9_i0'; its runs: lr1e-3_i0, "
                     "lr2e-3_i0"):
    sweep.resolve_run_reference("@tiny/lr9_i0", runs_root)
  with pytest.raises(InputError, match="a run reference is @<sweep name>/<run name>"):
    sweep.expand_references(["--init_checkpoint=@tiny"], runs_root)
  # A sweep whose run was planned (index written) but never trained.
  unfinished = write_tiny_sweep_file(str(tmp_path / "u.sweep"), "unfinished", tiny_bert_dir,
                                     tiny_corpus_dir, learning_rates=("4e-3",))
  spec = sweep_spec.read_sweep_file(unfinished)
  sweep.write_index(spec, sweep.plan_sweep(spec, runs_root), runs_root)
  with pytest.raises(sweep.UnfinishedReference, match="run lr4e-3_i0 of sweep 'unfinished' .* "
                     "has not finished"):
    sweep.resolve_run_reference("@unfinished/lr4e-3_i0", runs_root)
  stage_two = sweep_spec.read_sweep_file(_stage_two_file(
      str(tmp_path / "two.sweep"), "two", tiny_bert_dir, tiny_corpus_dir,
      ["@unfinished/lr4e-3_i0", "@tiny/lr1e-3_i0"]))
  with pytest.raises(sweep.UnfinishedReference, match="has not finished"):
    sweep.plan_sweep(stage_two, runs_root)
  # --dry_run lists the run as waiting, and resolves the other.
  plan = sweep.plan_sweep(stage_two, runs_root, allow_pending=True)
  assert [run.state for run in plan] == [sweep.PENDING, sweep.LEFT]
  assert "waits: @unfinished/lr4e-3_i0: run lr4e-3_i0" in sweep.describe_plan(plan)
  assert sweep.plan_summary(plan) == "2 runs: 1 new, 1 wait for runs of other sweeps"


def test_a_finished_max_seq_length_auto_run_is_done_and_then_reused(tmp_path, tiny_bert_dir,
                                                                      tiny_corpus_dir):
  """--max_seq_length=auto: the run records the length it chose, not the requested bound; the
  sweep still recognises the run as its own (done, then reused), instead of failing on it."""
  sweep_file = write_tiny_sweep_file(str(tmp_path / "auto.sweep"), "auto", tiny_bert_dir,
                                     tiny_corpus_dir, learning_rates=("1e-3",),
                                     extra_flags=("--max_seq_length=auto",
                                                  "--num_train_epochs=0.2"))
  runs_root = str(tmp_path / "runs")
  spec = sweep_spec.read_sweep_file(sweep_file)
  planned = sweep.plan_sweep(spec, runs_root)
  lines = []
  progress = sweep.run_all(planned, parallel=1, threads=sweep.thread_counts(1, 2),
                           emit=lines.append)
  assert progress.counts()[sweep.DONE] == 1, lines
  results = io_utils.read_json(os.path.join(planned[0].run_dir, "eval_results.json"))
  assert results["config"]["data"]["auto_max_seq_length"] is True
  assert results["config"]["data"]["max_seq_length"] < planned[0].config["data"]["max_seq_length"]
  again = sweep.plan_sweep(spec, runs_root)
  assert [run.state for run in again] == [sweep.REUSED]
  assert again[0].run_hash == planned[0].run_hash



def test_a_run_whose_results_do_not_match_it_fails_and_the_sweep_goes_on(
    tmp_path, tiny_bert_dir, tiny_corpus_dir, monkeypatch):
  """Results that cannot be matched with the run (InputError from finished_results) make that
  run FAILED with the reason, and the next run is still trained and counted done."""
  sweep_file = write_tiny_sweep_file(str(tmp_path / "two.sweep"), "two", tiny_bert_dir,
                                     tiny_corpus_dir, learning_rates=("1e-3", "2e-3"),
                                     extra_flags=("--num_train_epochs=0.2",))
  planned = sweep.plan_sweep(sweep_spec.read_sweep_file(sweep_file), str(tmp_path / "runs"))
  real = run_identity.finished_results

  def mismatched_first_run(directory, identity):
    if directory == planned[0].run_dir and os.path.exists(
        os.path.join(directory, run_identity.RESULTS_FILE)):
      raise InputError(directory, "was made with another configuration (test)")
    return real(directory, identity)

  monkeypatch.setattr(sweep.run_identity, "finished_results", mismatched_first_run)
  lines = []
  progress = sweep.run_all(planned, parallel=1, threads=sweep.thread_counts(1, 2),
                           emit=lines.append)
  assert [run.state for run in planned] == [sweep.FAILED, sweep.DONE]
  assert progress.counts()[sweep.RUNNING] == 0
  assert any("FAILED lr1e-3_i0" in line and "another configuration (test)" in line
             for line in lines), lines


def test_runs_recorded_in_a_results_file_are_not_retrained_on_a_new_machine(
    tiny_sweep, tmp_path, tiny_bert_dir, tiny_corpus_dir):
  """The run directories are gone (a new machine) but the committed results record two of the
  three runs: only the third is left to train, and the collector takes the two from the file."""
  _, runs_root, planned = tiny_sweep
  results_dir = str(tmp_path / "results")
  original = sweep_results.collect_sweep(os.path.join(runs_root, "tiny"))
  sweep_results.save_results(original, os.path.join(results_dir, "tiny.json"))
  grown = write_tiny_sweep_file(str(tmp_path / "tiny.sweep"), "tiny", tiny_bert_dir,
                                tiny_corpus_dir, learning_rates=("1e-3", "2e-3", "3e-3"))
  spec = sweep_spec.read_sweep_file(grown)
  new_root = str(tmp_path / "new_machine")
  recorded = sweep_results.recorded_runs(results_dir)
  assert set(recorded) == {run.run_hash for run in planned}

  assert [run.state for run in sweep.plan_sweep(spec, new_root)] == [sweep.LEFT] * 3
  plan = sweep.plan_sweep(spec, new_root, recorded=recorded)
  assert [run.state for run in plan] == [sweep.RECORDED, sweep.RECORDED, sweep.LEFT]
  assert [run.run_hash for run in plan[:2]] == [run.run_hash for run in planned]
  assert sweep.plan_summary(plan) == "3 runs: 1 new, 2 recorded"
  assert "recorded in " + os.path.join(results_dir, "tiny.json") in sweep.describe_plan(plan)

  lines = []
  progress = sweep.run_all(plan[:2], parallel=1, threads=sweep.thread_counts(1, 2),
                           emit=lines.append)
  assert progress.counts()[sweep.RECORDED] == 2 and progress.counts()[sweep.DONE] == 0
  assert not any(os.path.exists(run.run_dir) for run in plan)  # nothing trained
  sweep_dir = sweep.write_index(spec, plan, new_root)
  index = io_utils.read_json(os.path.join(sweep_dir, "index.json"))
  assert [entry.get("recorded_in") for entry in index["runs"]] == [
      os.path.join(results_dir, "tiny.json")] * 2 + [None]

  collected = sweep_results.collect_sweep(sweep_dir, recorded)
  assert collected["missing"] == ["lr3e-3_i0"]
  by_hash = {run["hash"]: run for run in original["runs"]}
  for run in collected["runs"]:
    assert run["final"] == by_hash[run["hash"]]["final"]
    assert run["evaluations"] == by_hash[run["hash"]]["evaluations"]
    assert run["recorded_in"] == os.path.join(results_dir, "tiny.json")
  # A run of the sweep found only in the record cannot seed another sweep (no checkpoint).
  with pytest.raises(sweep.UnfinishedReference, match="only recorded"):
    sweep.resolve_run_reference("@tiny/lr1e-3_i0", new_root)

  # The report says where the recorded runs come from; its results file records them again.
  written = sweep_report.report_sweep(grown, output=str(tmp_path / "report"), runs_root=new_root,
                                      results_dir=results_dir)
  with open(written["md"], encoding="utf-8") as f:
    assert "2 runs were trained earlier" in f.read()
  assert set(sweep_results.recorded_runs(results_dir)) == set(recorded)
