"""Fast variant of the crash-safety driver (bench/faults.py): a few SIGKILLs, then verify."""

import os
import random
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))

import faults  # noqa: E402  pylint: disable=g-import-not-at-top


def test_kills_while_writing_lose_nothing_and_trust_nothing_partial(tmp_path):
  setup = faults.build_setup(str(tmp_path))
  references = faults.reference_runs(setup, seeds=[1])
  setup["reference_seconds"] = references[1]["seconds"]
  rng = random.Random(0)
  phases = ["checkpoint_save", "tfrecord_half_written:train.", "before_rename:eval_results.json",
            "after_export"]
  trials = [faults.run_trial(i, phase, setup, rng, pause_seconds=3.0)
            for i, phase in enumerate(phases)]
  for trial in trials:
    assert trial["killed"], trial
    assert trial["phase_reached"], trial
    assert trial["rerun_exit_code"] == 0, trial
    assert trial["problems"] == [], trial
    assert trial["resumed_from_newest"], trial
    assert trial["steps_lost"] <= faults.SAVE_INTERVAL, trial
  # Killed with a complete temporary file: the rerun neither trusted nor needed it.
  assert trials[1]["newest_checkpoint_at_kill"] is None
  summary = faults.summarize(trials, references, reference_seed=1)
  assert summary["corrupt_files_trusted"] == 0
  assert summary["reruns_completed"] == summary["kills"] == len(phases)
  # Deterministic model (no dropout) + replayed batch order: resuming changes nothing.
  assert summary["within_tolerance"], summary["final_metric_max_abs_diff_vs_uninterrupted"]
