#!/usr/bin/env python
"""Crash-safety driver: SIGKILL real training runs at chosen and random moments, rerun, verify.

  python bench/faults.py [--kills=32] [--workdir=runs/faults] [--quick]

Each trial starts `run_bert_nlu.py` on a tiny BERT and tiny corpus (built here) in a fresh output
directory, kills it with SIGKILL in one phase, reruns the SAME command until it exits 0, and
checks:
  * the rerun resumed from the newest complete checkpoint present at the kill (steps lost <= the
    checkpoint interval);
  * nothing partial is trusted: every TFRecord cache entry has its full record count with valid
    CRCs, eval_results.json / best_metrics.json / run_manifest.json parse, the best checkpoint
    and the exported SavedModel load and predict;
  * the final metrics against an uninterrupted run with the same seed (and, for scale, the
    seed-to-seed spread of uninterrupted runs).
Phases: SIGKILL while a checkpoint is being saved, while the TFRecord cache is half written,
with a complete temporary file not yet renamed (cache, manifest, best_metrics.json,
eval_results.json), right after a SavedModel export, while the best checkpoint is copied, and at
random times. Fault points in the code (`io_utils.fault_point`) pause only when
$BERT_NLU_FAULT_POINT names them, so the kill lands in exactly that state.
Writes bench/results/faults.json and prints a summary. The CI variant (tests/test_faults.py,
`run_chain`) kills one shorter run once in each phase in turn, with the same checks.
"""

import argparse
import datetime
import glob
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
import provenance  # noqa: E402  pylint: disable=g-import-not-at-top  (bench/)

SAVE_INTERVAL = 15
TRAINING_COMPLETE = "Skipping training since max_steps has already saved"  # the Estimator's log
# In the order one run reaches them ("random": anywhere, placed before the end), so that
# `run_chain` can kill one run directory at each in turn.
PHASES = (
    "before_rename:run_manifest.json",
    "tfrecord_half_written:train.",
    "before_rename:train.",
    "checkpoint_save",
    "after_export",
    "best_checkpoint_copy",
    "before_rename:best_metrics.json",
    "random",
    "before_rename:eval_results.json",
)


class RunningProcess:
  """A subprocess whose combined output is collected line by line in a background thread."""

  def __init__(self, command, env, log_path):
    self.lines = []
    self.started = time.time()
    self.output_closed = None  # time.time() when the process closed its output (at exit)
    self._log = open(log_path, "a")
    self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, errors="replace")
    self._reader = threading.Thread(target=self._read, daemon=True)
    self._reader.start()

  def _read(self):
    for line in self.process.stdout:
      self.lines.append(line)
      self._log.write(line)
    self.output_closed = time.time()
    self._log.flush()

  def wait_for(self, pattern, timeout):
    """Index of the first line matching `pattern`, or None on timeout / exit."""
    regex = re.compile(pattern)
    deadline = time.time() + timeout
    seen = 0
    while time.time() < deadline:
      while seen < len(self.lines):
        if regex.search(self.lines[seen]):
          return seen
        seen += 1
      if self.process.poll() is not None and seen >= len(self.lines):
        self._reader.join(1)
        if seen >= len(self.lines):
          return None
      time.sleep(0.005)
    return None

  def kill(self):
    self.process.send_signal(signal.SIGKILL)
    self.process.wait()
    self._reader.join(5)
    self._log.close()

  def wait(self, timeout):
    code = self.process.wait(timeout=timeout)
    self._reader.join(5)
    self._log.close()
    return code


def training_command(bert_dir, corpus_dir, output_dir, seed, epochs=6):
  return [sys.executable, "run_bert_nlu.py", f"--bert_dir={bert_dir}", f"--data_dir={corpus_dir}",
          f"--output_dir={output_dir}", "--max_seq_length=16", "--train_batch_size=8",
          f"--num_train_epochs={epochs}", "--learning_rate=2e-3", "--head_dropout=0",
          f"--save_checkpoints_steps={SAVE_INTERVAL}", "--save_summary_steps=1",
          "--keep_checkpoint_max=2", f"--seed={seed}", "--eval_on_test",
          "--verbosity=1"]  # TensorFlow's log: the "Saving checkpoints for N" lines waited for


def newest_complete_checkpoint_step(output_dir):
  from bert_nlu import checkpoints  # pylint: disable=g-import-not-at-top
  from bert_nlu.compat import tf  # pylint: disable=g-import-not-at-top
  checkpoint = tf.train.latest_checkpoint(output_dir)
  if checkpoint is None or not os.path.exists(checkpoint + ".index"):
    return None
  return checkpoints.step_of(checkpoint)


def restored_before_training(lines, output_dir):
  """Steps of `output_dir`'s own checkpoints restored before the first logged training step.

  Empty: a fresh start. Restores of the kept best checkpoint (best_checkpoint/...), e.g. by the
  final evaluation of a run with nothing left to train, do not count.
  """
  steps = []
  for line in lines:
    if re.search(r"step = \d+", line):
      break
    match = re.search(r"Restoring parameters from (\S+)/model\.ckpt-(\d+)", line)
    if match and os.path.normpath(match.group(1)) == os.path.normpath(output_dir):
      steps.append(int(match.group(2)))
  return steps


def reached_training(lines):
  """Whether a run got as far as training: it restored a checkpoint or logged a step."""
  return any(re.search(r"step = \d+|Restoring parameters from \S+model\.ckpt-\d+", line)
             for line in lines)


def last_logged_step(lines):
  steps = [int(m.group(1)) for line in lines for m in [re.search(r"step = (\d+)", line)] if m]
  return max(steps) if steps else 0


def verify_run_directory(output_dir, finished=True):
  """Returns a list of problems: files that a run trusts but that are not valid.

  Args:
    output_dir: the run directory.
    finished: whether the run completed, so that its results, manifest and best checkpoint must
      exist; False (a run killed midway) checks only the files present under their final names.

  Returns:
    A list of strings, one per problem (empty: everything trusted is valid).
  """
  from bert_nlu import hooks, io_utils  # pylint: disable=g-import-not-at-top
  from bert_nlu.compat import tf  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  problems = []
  results_path = os.path.join(output_dir, "eval_results.json")
  if finished or os.path.exists(results_path):
    try:
      results = io_utils.read_json(results_path)
      assert set(results["splits"]) == {"dev", "test"}
    except Exception as e:  # pylint: disable=broad-except
      problems.append(f"eval_results.json: {e!r}")
  manifest_path = os.path.join(output_dir, "run_manifest.json")
  if finished or os.path.exists(manifest_path):
    try:
      io_utils.read_json(manifest_path)
    except Exception as e:  # pylint: disable=broad-except
      problems.append(f"run_manifest.json: {e!r}")
  for meta_path in glob.glob(os.path.join(output_dir, "data_cache", "*.meta.json")):
    try:
      meta = io_utils.read_json(meta_path)
      record_path = meta_path.replace(".meta.json", ".tfrecord")
      count = sum(1 for _ in tf.data.TFRecordDataset(record_path))  # checks every CRC
      if count != meta["num_examples"]:
        problems.append(f"{record_path}: {count} records, metadata says {meta['num_examples']}")
    except Exception as e:  # pylint: disable=broad-except
      problems.append(f"{meta_path}: {e!r}")
  if not finished and not os.path.exists(
      os.path.join(output_dir, hooks.BEST_DIR_NAME, hooks.BEST_METRICS_FILE)):
    return problems
  try:
    best = hooks.read_best(output_dir)
    reader = tf.train.load_checkpoint(best["checkpoint"])
    assert reader.get_variable_to_shape_map()
    import tensorflow as tf_v2  # pylint: disable=g-import-not-at-top
    loaded = tf_v2.saved_model.load(best["saved_model"])
    ids = np.array([[2, 5, 6, 3]], np.int32)
    outputs = loaded.signatures["serving_default"](
        input_ids=tf_v2.constant(ids), input_mask=tf_v2.ones_like(ids),
        segment_ids=tf_v2.zeros_like(ids))
    assert outputs["slot_ids"].shape == (1, 4)
  except Exception as e:  # pylint: disable=broad-except
    problems.append(f"best checkpoint / export: {e!r}")
  return problems


def final_metrics(output_dir):
  from bert_nlu import io_utils  # pylint: disable=g-import-not-at-top
  results = io_utils.read_json(os.path.join(output_dir, "eval_results.json"))
  return {f"{split}_{name}": results["splits"][split][name] for split in ("dev", "test")
          for name in ("whole_frame_accuracy", "intent_accuracy", "slot_f1")}


def run_to_completion(command, env, log_path, timeout=900):
  process = RunningProcess(command, env, log_path)
  code = process.wait(timeout)
  return code, process.lines


def kill_in_phase(phase, command, env, log_path, output_dir, rng, pause_seconds,
                  random_seconds):
  """Starts `command` and SIGKILLs it in `phase` (one of PHASES).

  Args:
    phase: where to kill: a fault point of the code (the process pauses there, named by
      $BERT_NLU_FAULT_POINT), "checkpoint_save" (0-80 ms after a checkpoint save of a step > 0
      began) or "random" (after a delay drawn from `random_seconds`).
    command, env: the training process.
    log_path: the process's output is appended here.
    output_dir: the run directory of `command`.
    rng: random.Random drawing the delays.
    pause_seconds: how long a fault point pauses (the kill lands well within it).
    random_seconds: (low, high) bounds of the "random" delay in seconds.

  Returns:
    (record, lines): record = {"phase", "killed", "seconds_alive"} and, if killed, the state at
    the kill ("phase_reached", "step_at_kill", "newest_checkpoint_at_kill",
    "partial_checkpoint_files", "temporary_files_left"), else a "note"; lines = the process's
    output. seconds_alive: from the start to the kill (or to the exit).
  """
  env = dict(env)
  env.pop("BERT_NLU_FAULT_POINT", None)
  if phase not in ("checkpoint_save", "random"):
    env["BERT_NLU_FAULT_POINT"] = phase
    env["BERT_NLU_FAULT_PAUSE_SECONDS"] = str(pause_seconds)
  process = RunningProcess(command, env, log_path)
  if phase == "checkpoint_save":
    found = process.wait_for(r"Saving checkpoints for [1-9]\d* into", 600)
    time.sleep(rng.uniform(0.0, 0.08))
  elif phase == "random":
    found = 0
    time.sleep(rng.uniform(*random_seconds))
  else:
    found = process.wait_for(r"FAULT-POINT " + re.escape(phase), 600)
  if process.process.poll() is not None:
    process.wait(5)
    return {"phase": phase, "killed": False,
            "seconds_alive": round((process.output_closed or time.time()) - process.started, 2),
            "note": f"process exited {process.process.returncode} before the kill"}, process.lines
  seconds_alive = round(time.time() - process.started, 2)
  process.kill()
  return {"phase": phase, "killed": True, "seconds_alive": seconds_alive,
          "phase_reached": found is not None,
          "step_at_kill": last_logged_step(process.lines),
          "newest_checkpoint_at_kill": newest_complete_checkpoint_step(output_dir),
          "partial_checkpoint_files": len(glob.glob(os.path.join(output_dir, "*_temp*"))),
          "temporary_files_left": len(glob.glob(os.path.join(output_dir, "**", ".*.tmp"),
                                                recursive=True))}, process.lines


def check_resume(killed, rerun_lines, output_dir):
  """Adds to a kill record where the next run of the same command resumed from.

  Args:
    killed: a record of `kill_in_phase` (killed); gains "resumed_from_step" (None: started
      afresh, or killed before restoring), "resumed_from_newest" (the newest complete checkpoint
      at the kill, or none when there was none) and "steps_lost".
    rerun_lines: the output of the next run in that run directory.
    output_dir: that run directory.
  """
  restored = restored_before_training(rerun_lines, output_dir)
  killed["resumed_from_step"] = restored[0] if restored else None
  if any(TRAINING_COMPLETE in line for line in rerun_lines):
    # The Estimator found its newest checkpoint at the last step: nothing to restore or train.
    killed["resumed_from_step"] = newest_complete_checkpoint_step(output_dir)
  expected = killed["newest_checkpoint_at_kill"]
  killed["resumed_from_newest"] = (killed["resumed_from_step"] == expected) or (
      expected is None and not restored) or (expected == 0 and killed["resumed_from_step"] in
                                             (None, 0))
  resumed = killed["resumed_from_step"] or 0
  killed["steps_lost"] = max(0, killed["step_at_kill"] - resumed)


def run_trial(index, phase, setup, rng, pause_seconds):
  """One trial: a fresh run killed in `phase`, rerun until it exits 0 (3 tries), verified."""
  output_dir = os.path.join(setup["workdir"], f"trial_{index:02d}")
  shutil.rmtree(output_dir, ignore_errors=True)
  command = training_command(setup["bert_dir"], setup["corpus_dir"], output_dir, seed=1)
  log_path = output_dir + ".log"
  open(log_path, "w").close()
  killed, _ = kill_in_phase(phase, command, dict(os.environ), log_path, output_dir, rng,
                            pause_seconds, (2.0, setup["reference_seconds"]))
  killed = {"trial": index, **killed}
  if not killed["killed"]:
    return killed
  reruns = 0
  while True:
    reruns += 1
    code, lines = run_to_completion(command, dict(os.environ), log_path)
    if code == 0 or reruns >= 3:
      break
  killed["rerun_exit_code"] = code
  killed["reruns"] = reruns
  check_resume(killed, lines, output_dir)
  killed["problems"] = verify_run_directory(output_dir) if code == 0 else ["rerun failed"]
  killed["metrics"] = final_metrics(output_dir) if code == 0 else None
  return killed


def random_kill_window(reference_seconds, kills, earliest=2.0):
  """(low, high) seconds for the chain's "random" kill, so that it lands before the run ends.

  A resumed run lives much shorter than the whole reference run, and how much shorter depends on
  the load: on a busy CPU the reference (run beside the chain) stretches more than the short
  resumed run does, and a third of it once outlived the resumed run (killed after exit 0). The
  previous killed run of the chain started the same way (start-up, restore, training to a
  checkpoint) under the same load, so its lifetime bounds the window too.

  Args:
    reference_seconds: wall time of the uninterrupted reference run.
    kills: the chain's kill records so far (`kill_in_phase`, with "seconds_alive").
    earliest: the window's lower end (the process has started TensorFlow by then).
  Returns:
    (earliest, high) with high = min(reference_seconds / 3, the last killed run's lifetime),
    never below earliest.
  """
  high = reference_seconds / 3
  lived = [kill["seconds_alive"] for kill in kills if kill.get("killed")]
  if lived:
    high = min(high, lived[-1])
  return earliest, max(earliest, high)


def run_chain(setup, rng, pause_seconds, epochs, phases=PHASES, seed=1):
  """One run directory killed once in each of `phases` in turn, then run to completion.

  The run started for each phase is also the rerun of the previous kill: it must resume from the
  newest complete checkpoint present at that kill (checked on the next run that reaches training:
  one killed before, e.g. at a random moment of its start-up, shows no resume). At every kill,
  each file present under its final name must be valid. An uninterrupted run of the same command
  (the reference) runs alongside, on the second core. Cheaper than one trial per phase (one
  process per phase, one training in all), for CI.

  Args:
    setup: build_setup's dict.
    rng: random.Random drawing the delays.
    pause_seconds: how long a fault point pauses.
    epochs: --num_train_epochs of both runs.
    phases: kill phases, in the order a run reaches them (a phase whose moment has passed in the
      run directory is never reached). "random" kills within the first third of the
      reference's wall time (a resumed run is shorter than a whole one) and within the time the
      previous killed run lived (`random_kill_window`).
    seed: --seed of both runs.

  Returns:
    {"kills": [kill record + check_resume fields + "problems" at the kill, per phase],
     "exit_code": of the final run, "problems": of the finished directory, "metrics": final,
     "evaluated_steps": {step: dev metric} of the finished run, "reference": {"metrics",
     "seconds", "evaluated_steps"} of the uninterrupted run}.
  """
  reference_run = ReferenceRun(setup, seed, epochs)
  reference = None
  output_dir = os.path.join(setup["workdir"], "chain")
  shutil.rmtree(output_dir, ignore_errors=True)
  command = training_command(setup["bert_dir"], setup["corpus_dir"], output_dir, seed, epochs)
  log_path = output_dir + ".log"
  open(log_path, "w").close()
  kills = []
  unchecked = []  # kills whose resume no later run has shown yet
  for phase in phases:
    if phase == "random" and reference is None:
      reference = reference_run.result()
    random_seconds = random_kill_window(reference["seconds"], kills) if reference else None
    killed, lines = kill_in_phase(phase, command, dict(os.environ), log_path, output_dir, rng,
                                  pause_seconds, random_seconds)
    if reached_training(lines):  # else killed before it restored anything: no new checkpoint
      for earlier in unchecked:
        check_resume(earlier, lines, output_dir)
      unchecked = []
    killed["problems"] = verify_run_directory(output_dir, finished=False)
    kills.append(killed)
    if killed["killed"]:
      unchecked.append(killed)
  code, lines = run_to_completion(command, dict(os.environ), log_path)
  for earlier in unchecked:
    check_resume(earlier, lines, output_dir)
  if reference is None:
    reference = reference_run.result()
  reference["evaluated_steps"] = evaluated_steps(reference_run.output_dir)
  finished = code == 0
  return {"kills": kills, "exit_code": code,
          "problems": verify_run_directory(output_dir) if finished else ["final run failed"],
          "metrics": final_metrics(output_dir) if finished else None,
          "evaluated_steps": evaluated_steps(output_dir) if finished else None,
          "reference": reference}


def build_setup(workdir):
  from bert_nlu import testing  # pylint: disable=g-import-not-at-top
  os.makedirs(workdir, exist_ok=True)
  # No dropout: with the batch sequence replayed on resume (input_pipeline skips trained
  # batches), a resumed run must then end with exactly the metrics of an uninterrupted one.
  bert_dir = testing.make_tiny_bert(os.path.join(workdir, "tiny_bert"),
                                    testing.corpus_vocabulary(), dropout=0.0)
  corpus_dir = testing.make_corpus(os.path.join(workdir, "corpus"))
  return {"workdir": workdir, "bert_dir": bert_dir, "corpus_dir": corpus_dir}


class ReferenceRun:
  """An uninterrupted run of the trials' command (started at construction, in the background)."""

  def __init__(self, setup, seed, epochs=6):
    self.output_dir = os.path.join(setup["workdir"], f"reference_seed{seed}")
    shutil.rmtree(self.output_dir, ignore_errors=True)
    self._seed = seed
    self._process = RunningProcess(
        training_command(setup["bert_dir"], setup["corpus_dir"], self.output_dir, seed, epochs),
        dict(os.environ), self.output_dir + ".log")

  def result(self, timeout=900):
    """Waits for the run; returns {"metrics": final_metrics, "seconds": its wall time}."""
    if self._process.wait(timeout) != 0:
      raise RuntimeError(f"reference run (seed {self._seed}) failed; see {self.output_dir}.log")
    return {"metrics": final_metrics(self.output_dir),
            "seconds": self._process.output_closed - self._process.started}


def reference_runs(setup, seeds, epochs=6):
  return {seed: ReferenceRun(setup, seed, epochs).result() for seed in seeds}


def evaluated_steps(output_dir):
  """{global step: dev selection metric} of every evaluation the run's exporter recorded."""
  from bert_nlu import hooks, io_utils  # pylint: disable=g-import-not-at-top
  path = os.path.join(output_dir, hooks.BEST_DIR_NAME, hooks.EVALUATED_STEPS_FILE)
  return {int(step): value for step, value in io_utils.read_json(path).items()}


def summarize(trials, references, reference_seed=1):
  reference = references[reference_seed]["metrics"]
  killed = [t for t in trials if t["killed"]]
  completed = [t for t in killed if t.get("rerun_exit_code") == 0]
  diffs = {k: max((abs(t["metrics"][k] - reference[k]) for t in completed), default=0.0)
           for k in reference}
  seed_spread = {k: max(r["metrics"][k] for r in references.values()) -
                 min(r["metrics"][k] for r in references.values()) for k in reference}
  return {
      "kills": len(killed),
      "kills_by_phase": {p: sum(t["phase"] == p for t in killed) for p in PHASES},
      "kills_that_reached_their_phase": sum(bool(t.get("phase_reached")) for t in killed),
      "kills_with_partial_checkpoint_on_disk": sum(t["partial_checkpoint_files"] > 0
                                                   for t in killed),
      "kills_with_temporary_files_on_disk": sum(t["temporary_files_left"] > 0 for t in killed),
      "reruns_completed": len(completed),
      "resumed_from_newest_checkpoint": sum(bool(t["resumed_from_newest"]) for t in completed),
      "max_steps_lost": max((t["steps_lost"] for t in completed), default=0),
      "checkpoint_interval": SAVE_INTERVAL,
      "corrupt_files_trusted": sum(len(t["problems"]) for t in killed),
      "final_metric_max_abs_diff_vs_uninterrupted": diffs,
      "runs_with_identical_final_metrics": sum(t["metrics"] == reference for t in completed),
      "uninterrupted_seed_to_seed_spread": seed_spread,
      "tolerance_note": ("Dropout is off in this driver's model, and a resumed run replays the "
                         "same batches (the input pipeline skips those already trained on), so "
                         "the stated tolerance is 0: final metrics must equal the uninterrupted "
                         "run's. With dropout on, TF's stateful dropout masks restart with the "
                         "process, so a resumed run then differs like another seed does; the "
                         "seed-to-seed spread is reported for that scale."),
      "tolerance": 0.0,
      "within_tolerance": all(diff == 0.0 for diff in diffs.values()),
  }


def main():
  code_version = provenance.git_state()  # at the start: code may change during a long run
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--kills", type=int, default=len(PHASES) * 4)
  parser.add_argument("--workdir", default="runs/faults")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--pause_seconds", type=float, default=3.0)
  parser.add_argument("--reference_seeds", default="1,2,3")
  parser.add_argument("--output", default=os.path.join(REPO, "bench", "results", "faults.json"))
  args = parser.parse_args()
  from bert_nlu import io_utils  # pylint: disable=g-import-not-at-top
  rng = random.Random(args.seed)
  setup = build_setup(os.path.abspath(args.workdir))
  seeds = [int(s) for s in args.reference_seeds.split(",")]
  references = reference_runs(setup, seeds)
  setup["reference_seconds"] = references[seeds[0]]["seconds"]
  trials = []
  for index in range(args.kills):
    phase = PHASES[index % len(PHASES)]
    trial = run_trial(index, phase, setup, rng, args.pause_seconds)
    trials.append(trial)
    print(json.dumps({k: trial.get(k) for k in ("trial", "phase", "killed", "step_at_kill",
                                                 "newest_checkpoint_at_kill", "resumed_from_step",
                                                 "steps_lost", "problems")}), flush=True)
  summary = summarize(trials, references, seeds[0])
  report = {
      "benchmark": "faults",
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "command": " ".join(sys.argv),
      "git": code_version,
      "summary": summary,
      "references": references,
      "trials": trials,
  }
  io_utils.atomic_write_json(args.output, report)
  print(json.dumps(summary, indent=2))
  return 0 if summary["corrupt_files_trusted"] == 0 and summary["reruns_completed"] == summary[
      "kills"] else 1


if __name__ == "__main__":
  sys.exit(main())
