"""The forgetting report on eval_results.json-shaped runs: per-intent drops computed by hand."""

import json
import os
import subprocess
import sys

import pytest

from bert_nlu import forgetting_report, io_utils, sweep
from bert_nlu.errors import InputError

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _per_intent(count, intent_accuracy, slot_f1, whole_frame_accuracy):
  return {"count": count, "intent_accuracy": intent_accuracy, "slot_f1": slot_f1,
          "whole_frame_accuracy": whole_frame_accuracy, "token_f1_micro": 0.5}


def _write_run(directory, train_intent_counts, dev, test=None, source=""):
  """A finished run's eval_results.json: `dev`/`test` are {intent: per-intent metrics}."""
  os.makedirs(directory, exist_ok=True)
  splits = {}
  for split, per_intent in (("dev", dev), ("test", test)):
    if per_intent:
      total = sum(row["count"] for row in per_intent.values())
      overall = {metric: sum(row[metric] * row["count"] for row in per_intent.values()) / total
                 for metric in ("intent_accuracy", "slot_f1", "whole_frame_accuracy")}
      splits[split] = dict(overall, num_examples=total, per_intent=per_intent)
  results = {"splits": splits, "train_intent_counts": train_intent_counts, "config": {}}
  if source:
    results["warm_start"] = {"source_run_dir": source}
  io_utils.atomic_write_json(os.path.join(directory, "eval_results.json"), results)
  return str(directory)


@pytest.fixture
def runs(tmp_path):
  """Stage 1 trained on A and B; stage 2 trained on C alone, continuing from stage 1."""
  before = _write_run(tmp_path / "stage1", {"A": 10, "B": 5},
                      dev={"A": _per_intent(4, 1.0, 0.9, 0.75), "B": _per_intent(2, 0.5, 0.8, 0.5),
                           "C": _per_intent(2, 0.0, 0.2, 0.0)},
                      test={"A": _per_intent(3, 1.0, 1.0, 1.0)})
  after = _write_run(tmp_path / "stage2", {"C": 4}, source=before,
                     dev={"A": _per_intent(4, 0.5, 0.6, 0.25), "B": _per_intent(2, 0.5, 0.8, 0.5),
                          "C": _per_intent(2, 1.0, 0.7, 0.5)},
                     test={"A": _per_intent(3, 2 / 3, 1.0, 1 / 3)})
  return before, after


def test_per_intent_drops_against_the_run_each_continued_from(runs):
  before, after = runs
  results = forgetting_report.collect([after])
  assert results["pairs"][0]["before"]["run_dir"] == os.path.abspath(before)
  rows = {(r["split"], r["intent"]): r for r in forgetting_report.intent_rows(results)}
  assert [key for key in rows] == [("dev", "A"), ("dev", "B"), ("dev", "C"),
                                   ("dev", "(all intents)"), ("test", "A"),
                                   ("test", "(all intents)")]
  a, c = rows["dev", "A"], rows["dev", "C"]
  assert (a["role"], c["role"]) == ("old", "new")
  assert a["intent_accuracy_drop"] == pytest.approx(0.5)
  assert a["slot_f1_drop"] == pytest.approx(0.3)
  assert a["whole_frame_accuracy_drop"] == pytest.approx(0.5)
  assert rows["dev", "B"]["whole_frame_accuracy_drop"] == 0.0
  assert c["intent_accuracy_drop"] == pytest.approx(-1.0)  # learned
  assert c["slot_f1_drop"] == pytest.approx(-0.5)
  # Overall dev intent accuracy: (4 + 1 + 0) / 8 before, (2 + 1 + 2) / 8 after.
  assert rows["dev", "(all intents)"]["intent_accuracy_drop"] == pytest.approx(0.0)
  assert rows["test", "A"]["whole_frame_accuracy_drop"] == pytest.approx(2 / 3)


def test_summary_weights_the_old_intents_by_their_examples(runs):
  _, after = runs
  summary = forgetting_report.summary_rows(forgetting_report.collect([after]))[0]
  assert summary["new intent_accuracy after"] == 1.0
  # Old intents A (4 examples) and B (2): accuracy before (4 * 1.0 + 2 * 0.5) / 6 = 5/6, after
  # (4 * 0.5 + 2 * 0.5) / 6 = 1/2.
  assert summary["old intent_accuracy before"] == pytest.approx(5 / 6)
  assert summary["old intent_accuracy after"] == pytest.approx(1 / 2)
  assert summary["old intent_accuracy drop"] == pytest.approx(1 / 3)
  assert summary["old whole_frame_accuracy drop"] == pytest.approx((4 * 0.5 + 0) / 6)


def test_the_report_files(runs, tmp_path):
  _, after = runs
  written = forgetting_report.write_report(forgetting_report.collect([after]),
                                           str(tmp_path / "reports" / "seq"),
                                           rebuild_command="REBUILD", findings="It forgets A.")
  with open(written["png"], "rb") as f:
    assert f.read(8) == PNG_MAGIC
  text = open(written["md"], encoding="utf-8").read()
  assert "It forgets A." in text and "REBUILD" in text
  assert "![whole_frame_accuracy drop](seq.png)" in text
  # Summary row: new intent accuracy 100, old 83.33 -> 50.00, drop 33.33.
  assert "| stage2 | stage1 | 100.00 | 83.33 | 50.00 | 33.33 |" in text
  assert "| stage2 | dev | A | old | 100.00 | 50.00 | 50.00 |" in text
  csv = open(written["csv"], encoding="utf-8").read().splitlines()
  assert len(csv) == 1 + 6 and csv[0].startswith("after,before,split,intent,role,")


def test_references_an_explicit_before_and_errors(runs, tmp_path):
  before, after = runs
  runs_root = str(tmp_path / "sweeps")
  os.makedirs(os.path.join(runs_root, "stage2"))
  io_utils.atomic_write_json(os.path.join(runs_root, "stage2", sweep.INDEX_FILE), {"runs": [
      {"name": "heads_i0", "run_dir": os.path.relpath(after, os.path.join(runs_root, "stage2"))}]})
  assert forgetting_report.sweep_runs("stage2", runs_root) == ["@stage2/heads_i0"]
  results = forgetting_report.collect(["@stage2/heads_i0", f"again={after}"],
                                      before_spec=f"first={before}", runs_root=runs_root)
  assert [p["after"]["label"] for p in results["pairs"]] == ["heads_i0", "again"]
  assert {p["before"]["label"] for p in results["pairs"]} == {"first"}
  with pytest.raises(InputError, match="give --before"):
    forgetting_report.collect([before])  # stage 1 continued from no run
  with pytest.raises(sweep.UnfinishedReference, match="no run named 'x'"):
    forgetting_report.collect(["@stage2/x"], runs_root=runs_root)
  with pytest.raises(InputError, match="not a finished run"):
    forgetting_report.collect([str(tmp_path)])


def test_the_command_collects_then_rebuilds_from_the_results_json(runs, tmp_path):
  _, after = runs
  output = str(tmp_path / "out" / "seq")
  results_path = str(tmp_path / "results" / "seq.json")
  env = dict(os.environ, PYTHONPATH=REPO_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
  command = [sys.executable, "-m", "bert_nlu.forgetting_report", f"--after={after}",
             f"--output={output}", f"--results={results_path}"]
  done = subprocess.run(command, cwd=REPO_DIR, env=env, capture_output=True, text=True,
                        check=False)
  assert done.returncode == 0, done.stderr
  first = open(output + ".md", encoding="utf-8").read()
  os.remove(output + ".md")
  again = subprocess.run([sys.executable, "-m", "bert_nlu.forgetting_report", results_path,
                          f"--output={output}"], cwd=REPO_DIR, env=env, capture_output=True,
                         text=True, check=False)
  assert again.returncode == 0, again.stderr
  rebuilt = open(output + ".md", encoding="utf-8").read()
  assert rebuilt.replace(results_path, "X") == first.replace(results_path, "X")
  assert json.load(open(results_path))["pairs"][0]["after"]["label"] == "stage2"
