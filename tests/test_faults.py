"""Fast variant of the crash-safety driver (bench/faults.py): SIGKILL in each of its nine phases."""

import os
import random
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))

import faults  # noqa: E402  pylint: disable=g-import-not-at-top

# 2 epochs of the tiny corpus: 38 steps, checkpoints (and evaluations) at 15, 30 and 38.
EPOCHS = 2


def test_one_run_killed_in_every_phase_resumes_each_time_and_ends_as_uninterrupted(tmp_path):
  chain = faults.run_chain(faults.build_setup(str(tmp_path)), random.Random(0),
                           pause_seconds=3.0, epochs=EPOCHS)
  kills = {kill["phase"]: kill for kill in chain["kills"]}
  assert list(kills) == list(faults.PHASES)
  for kill in chain["kills"]:
    assert kill["killed"], kill
    assert kill["phase_reached"], kill
    assert kill["problems"] == [], kill  # every file under its final name is whole at the kill
    assert kill["resumed_from_newest"], kill  # by the next run that got as far as training
    assert kill["steps_lost"] <= faults.SAVE_INTERVAL, kill
  # Each fault point held a complete temporary file (or half a TFRecord) when the kill landed;
  # the next run neither trusted nor needed it.
  for phase in faults.PHASES:
    if phase.startswith(("before_rename:", "tfrecord_half_written:")):
      assert kills[phase]["temporary_files_left"] >= 1, kills[phase]
  for phase in faults.PHASES[:3]:  # before training: nothing to resume from
    assert kills[phase]["newest_checkpoint_at_kill"] is None, kills[phase]
  # Killed inside the exporter, before the evaluation was recorded: the next run resumed from
  # that checkpoint and evaluated it again.
  for phase in ("after_export", "best_checkpoint_copy", "before_rename:best_metrics.json"):
    assert kills[phase]["resumed_from_step"], kills[phase]
  assert chain["exit_code"] == 0
  assert chain["problems"] == []
  # Every checkpoint the uninterrupted run evaluated was evaluated, with the same dev metric,
  # although some were saved and never evaluated before a kill.
  assert chain["evaluated_steps"] == chain["reference"]["evaluated_steps"]
  # Deterministic model (no dropout) + replayed batch order: nine kills change nothing.
  assert chain["metrics"] == chain["reference"]["metrics"]


def test_random_kill_window_is_bounded_by_the_last_killed_run_and_a_third_of_the_reference():
  assert faults.random_kill_window(60.0, []) == (2.0, 20.0)
  kills = [{"killed": True, "seconds_alive": 9.5}, {"killed": False, "seconds_alive": 30.0}]
  assert faults.random_kill_window(60.0, kills) == (2.0, 9.5)  # a run that exited is not a bound
  assert faults.random_kill_window(15.0, kills) == (2.0, 5.0)
  assert faults.random_kill_window(60.0, [{"killed": True, "seconds_alive": 1.0}]) == (2.0, 2.0)
