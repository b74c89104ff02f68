"""Sweep reports from results JSONs: tables against numpy, charts written, the GLUE table."""

import json
import os
import subprocess
import sys

import numpy as np

from bert_nlu import sweep_report

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(name, grid, instance, final, task="corpus", selected_by="accuracy", evaluations=None,
         batch_size=32, learning_rate=1e-4, seconds=120.0):
  return {"name": name, "hash": name, "variant": "", "grid": grid, "instance": instance,
          "seed": 42 + instance, "settings": {}, "train_batch_size": batch_size,
          "learning_rate": learning_rate, "num_train_epochs": 3.0, "task": task,
          "selected_by": selected_by, "best_step": 20, "train_seconds": seconds,
          "final": {"dev": final}, "evaluations": evaluations or []}


def lr_batch_results():
  """2 batch sizes x 2 learning rates x 2 instances; accuracy = f(batch, lr, instance)."""
  runs = []
  for batch in (16, 32):
    for rate in ("1e-4", "2e-4"):
      for instance in range(2):
        accuracy = 0.7 + 0.1 * (rate == "2e-4") - 0.05 * (batch == 32) + 0.01 * instance
        evaluations = [{"step": step, "accuracy": accuracy * step / 20} for step in (10, 20)]
        runs.append(_run(f"bs{batch}_lr{rate}_i{instance}",
                         {"train_batch_size": str(batch), "learning_rate": rate}, instance,
                         {"accuracy": accuracy, "f1": accuracy + 0.1}, evaluations=evaluations,
                         batch_size=batch, learning_rate=float(rate)))
  return {"version": 1, "sweep": "lr_batch", "sweep_file": "configs/sweeps/x.sweep",
          "metric": "accuracy", "grid_flags": ["train_batch_size", "learning_rate"],
          "collected": "now", "missing": [], "runs": runs}


def test_report_of_a_batch_size_x_learning_rate_grid(tmp_path):
  output = str(tmp_path / "reports" / "lr_batch")
  written = sweep_report.write_report(lr_batch_results(), output, rebuild_command="REBUILD",
                                      findings="## Findings\n\nBatch 16 wins.\n")
  assert set(written) == {"csv", "md", "learning_rate", "batch_size", "examples_seen"}
  for chart in ("learning_rate", "batch_size", "examples_seen"):
    with open(written[chart], "rb") as f:
      assert f.read(8) == PNG_MAGIC
  text = open(written["md"], encoding="utf-8").read()
  assert "![examples_seen](lr_batch_examples_seen.png)" in text
  assert "REBUILD" in text
  assert text.index("## Findings\n\nBatch 16 wins.") < text.index("## Final dev metric")
  # The grid-point row of batch 32, lr 2e-4: accuracies 0.75 and 0.76.
  expected = np.array([0.75, 0.76])
  row = (f"| 32 | 0.0002 | 2 | {expected.mean():.4f} | {expected.std(ddof=1):.3g} | 0.7500 | "
         "0.7600 | 2.0000 |")
  assert row in text
  assert "## GLUE tasks" not in text


def test_the_examples_seen_curves_take_each_batch_size_at_its_best_learning_rate():
  from bert_nlu import sweep_results  # pylint: disable=g-import-not-at-top
  frame = sweep_results.to_dataframe(lr_batch_results())
  best = sweep_report.best_settings(frame, "accuracy", "train_batch_size", ["learning_rate"])
  assert set(best["learning_rate"]) == {0.0002}
  assert len(best) == 2 * 2 * 2  # 2 batch sizes x 2 instances x 2 evaluations


def test_glue_table_picks_each_task_at_its_best_learning_rate_on_dev(tmp_path):
  runs = []
  # The selection metric decides the learning rate even where the main metric disagrees.
  for task, selected, values in (
      ("MRPC", "accuracy_f1_mean", {"1e-4": {"accuracy": 0.80, "f1": 0.90},
                                    "2e-4": {"accuracy": 0.82, "f1": 0.84}}),
      ("STS-B", "pearson_spearman_mean", {"1e-4": {"pearson": 0.86, "spearman": 0.84},
                                          "2e-4": {"pearson": 0.85, "spearman": 0.86}})):
    for rate, metrics in values.items():
      final = dict(metrics, **{selected: sum(metrics.values()) / 2})
      runs.append(_run(f"{task}_{rate}", {"glue_task": task, "learning_rate": rate}, 0, final,
                       task=task, selected_by=selected, learning_rate=float(rate),
                       seconds=600.0))
  results = {"sweep": "glue", "sweep_file": "g.sweep", "metric": "", "missing": [],
             "grid_flags": ["glue_task", "learning_rate"], "runs": runs}
  from bert_nlu import sweep_results  # pylint: disable=g-import-not-at-top
  table = sweep_report.glue_table(sweep_results.to_dataframe(results),
                                  ["glue_task", "learning_rate"])
  rows = table.set_index("task").to_dict("index")
  assert rows["MRPC"]["learning_rate"] == 1e-4  # mean(0.80, 0.90) > mean(0.82, 0.84)
  assert (rows["MRPC"]["main metric"], rows["MRPC"]["main"]) == ("accuracy", 0.80)
  assert (rows["MRPC"]["second metric"], rows["MRPC"]["second"]) == ("f1", 0.90)
  assert rows["STS-B"]["learning_rate"] == 2e-4
  assert (rows["STS-B"]["main"], rows["STS-B"]["second"]) == (0.85, 0.86)
  assert rows["STS-B"]["training minutes"] == 10.0
  # Floors: MRPC needs accuracy 0.792 AND F1 0.857 (0.80 / 0.90 meet both); STS-B Pearson 0.865.
  assert rows["MRPC"]["meets floor"] is True and rows["STS-B"]["meets floor"] is False
  assert rows["MRPC"]["floor"] == "accuracy 0.792, f1 0.857"
  assert sweep_report.report_metric(results) == "selection"  # the tasks select differently
  written = sweep_report.write_report(results, str(tmp_path / "glue"))
  text = open(written["md"], encoding="utf-8").read()
  assert "## GLUE tasks" in text and "metric: dev `selection`" in text
  assert "| MRPC | 0.0001 | 1 | 0.8500 |" in text  # the final table: each run's selection metric


def test_glue_table_picks_the_best_variant_when_variants_are_configurations_of_one_task():
  runs = []
  for variant, values in (("warmup10", (0.25, 0.28)), ("no_warmup", (0.22, 0.27))):
    for instance, mcc in enumerate(values):
      run = _run(f"{variant}_i{instance}", {}, instance, {"matthews_corrcoef": mcc,
                                                          "accuracy": 0.7}, task="CoLA",
                 selected_by="matthews_corrcoef")
      run["variant"] = variant
      runs.append(run)
  results = {"sweep": "cola", "sweep_file": "c.sweep", "metric": "", "missing": [],
             "grid_flags": [], "runs": runs}
  from bert_nlu import sweep_results  # pylint: disable=g-import-not-at-top
  table = sweep_report.glue_table(sweep_results.to_dataframe(results), [])
  row = table.set_index("task").to_dict("index")["CoLA"]
  # The better variant's mean (0.265), over its own 2 instances, not the mean of all 4 runs.
  assert row["variant"] == "warmup10" and row["instances"] == 2
  assert abs(row["main"] - 0.265) < 1e-9


def test_the_learning_rate_chart_draws_a_line_per_batch_size_else_per_variant():
  # lr x batch: a line per batch size; GLUE tasks as variants: a line per task, not one mean of
  # MCC, correlations and accuracies; a plain learning-rate grid: one line.
  assert sweep_report.learning_rate_lines(["train_batch_size", "learning_rate"],
                                          ["variant", "train_batch_size", "learning_rate"]) == (
                                              "train_batch_size")
  assert sweep_report.learning_rate_lines(["learning_rate"], ["variant", "learning_rate"]) == (
      "variant")
  assert sweep_report.learning_rate_lines(["learning_rate"], ["learning_rate"]) is None


def test_the_command_rebuilds_a_report_from_a_results_json(tmp_path):
  results_path = tmp_path / "lr_batch.json"
  results_path.write_text(json.dumps(lr_batch_results()), encoding="utf-8")
  output = str(tmp_path / "out" / "lr_batch")
  env = dict(os.environ, PYTHONPATH=REPO_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
  result = subprocess.run([sys.executable, "-m", "bert_nlu.sweep_report", str(results_path),
                           f"--output={output}"], cwd=REPO_DIR, env=env, capture_output=True,
                          text=True, check=False)
  assert result.returncode == 0, result.stderr
  assert os.path.exists(output + ".md") and os.path.exists(output + "_learning_rate.png")
  text = open(output + ".md", encoding="utf-8").read()
  assert f"python -m bert_nlu.sweep_report {results_path} --output={output}" in text


def study_results():
  """Variants only (no learning-rate or batch grid), 2 instances: a per-intent metric, speeds."""
  runs = []
  for variant, play, overall, speed, parameters in (("play10", 0.2, 0.80, 100.0, 1000),
                                                    ("all", 0.9, 0.88, 50.0, 3000)):
    for instance in range(2):
      run = _run(f"{variant}_i{instance}", {}, instance, {
          "whole_frame_accuracy": overall + 0.01 * instance,
          "per_intent.PlayMusic.whole_frame_accuracy": play + 0.1 * instance,
          "prediction_examples_per_second": 2 * speed + instance})
      run.update(variant=variant, train_examples_per_second=speed + 2 * instance,
                 parameters=parameters, trainable_parameters=parameters // 2)
      runs.append(run)
  return {"sweep": "limited", "sweep_file": "l.sweep", "metric": "", "missing": [],
          "grid_flags": [], "runs": runs}


def test_a_per_intent_metric_per_configuration_with_speed_columns(tmp_path):
  written = sweep_report.write_report(
      study_results(), str(tmp_path / "limited"),
      metric="per_intent.PlayMusic.whole_frame_accuracy", columns=["whole_frame_accuracy"],
      speed=True)
  assert set(written) == {"csv", "md", "configurations", "training_speed", "prediction_speed"}
  for chart in ("configurations", "training_speed", "prediction_speed"):
    with open(written[chart], "rb") as f:
      assert f.read(8) == PNG_MAGIC
  text = open(written["md"], encoding="utf-8").read()
  assert "metric: dev `per_intent.PlayMusic.whole_frame_accuracy`" in text
  header = ("| variant | runs | mean | std | min | max | train_minutes | whole_frame_accuracy | "
            "train_examples_per_second | prediction_examples_per_second | parameters | "
            "trainable_parameters |")
  assert header in text
  # play10: PlayMusic 0.2 and 0.3; overall 0.80 and 0.81; train 100 and 102 ex/s, predict 200 and
  # 201; in the sweep's order (play10 before all).
  play10 = (f"| play10 | 2 | 0.2500 | {np.std([0.2, 0.3], ddof=1):.4f} | 0.2000 | 0.3000 | "
            "2.0000 | 0.8050 | 101.0000 | 200.5000 | 1000 | 500 |")
  assert play10 in text and text.index(play10) < text.index("| all | 2 | 0.9500 |")
  assert "![configurations](limited_configurations.png)" in text
  labels = sweep_report.configuration_labels(
      sweep_results_frame(study_results()).drop_duplicates("run"), ["variant"])
  assert labels == ["play10", "play10", "all", "all"]


def sweep_results_frame(results):
  from bert_nlu import sweep_results  # pylint: disable=g-import-not-at-top
  return sweep_results.to_dataframe(results)


def test_dotted_metric_names_are_escaped_for_altair():
  assert sweep_report.altair_field("final_per_intent.PlayMusic.slot_f1") == \
      "final_per_intent\\.PlayMusic\\.slot_f1"
