"""bench/glue_floor_pytorch.py's summary over seeds (the fine-tune itself needs torch, bench only)."""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))

import glue_floor_pytorch  # noqa: E402  pylint: disable=g-import-not-at-top


def test_the_summary_is_mean_and_sample_std_of_each_metric_over_seeds():
  runs = [{"last": {"epoch": 3, "num_examples": 1500, "pearson": p, "spearman": s}}
          for p, s in ((0.86, 0.85), (0.87, 0.86), (0.85, 0.87))]
  summary = glue_floor_pytorch.summarize(runs, "last")
  assert set(summary) == {"pearson", "spearman"}  # not the epoch or the example count
  assert summary["pearson"]["mean"] == pytest.approx(0.86)
  assert summary["pearson"]["std"] == pytest.approx(0.01)  # n - 1
  assert summary["spearman"]["values"] == [0.85, 0.86, 0.87]
  result = {"floor_percent": {"pearson": 86.5}, "per_seed": [{"seed": 42}, {"seed": 43}],
            "last_epoch": summary, "best_epoch": summary}
  text = glue_floor_pytorch.format_table("STS-B", result)
  assert "pearson            last_epoch  86.00 +- 1.00  (86.00 / 87.00 / 85.00; floor 86.5)" in text


def test_targets_are_scores_for_regression_and_label_ids_otherwise():
  class Example:  # pylint: disable=too-few-public-methods
    def __init__(self, label=None, score=None):
      self.label, self.score = label, score
  assert glue_floor_pytorch.targets([Example(score="3.2")], ()) == [3.2]
  assert glue_floor_pytorch.targets([Example("1"), Example("0")], ("0", "1")) == [1, 0]


def test_seeds_recorded_with_the_same_settings_are_reused_and_others_are_not():
  settings = {"epochs": 3, "learning_rate": 1e-4}
  runs = [{"seed": seed, "last": {"pearson": p}, "best_epoch": {"pearson": p}}
          for seed, p in ((42, 0.86), (43, 0.87))]
  recorded = {"settings": dict(settings), **glue_floor_pytorch.summaries(runs)}
  assert recorded["last_epoch"]["pearson"]["values"] == [0.86, 0.87]
  assert glue_floor_pytorch.recorded_seed_runs(recorded, settings) == {42: runs[0], 43: runs[1]}
  assert glue_floor_pytorch.recorded_seed_runs(recorded, dict(settings, epochs=2)) == {}
  assert glue_floor_pytorch.recorded_seed_runs(None, settings) == {}
