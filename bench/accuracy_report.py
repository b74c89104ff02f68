#!/usr/bin/env python
"""Experiment report over NLU fine-tuning runs: dev curves and the selected checkpoints' metrics.

  python bench/accuracy_report.py --run "SNIPS|softmax + intent context|runs/bench/snips" \
      --run "SNIPS|CRF + intent context|runs/bench_crf/snips" ... [--name nlu_accuracy]

Each --run is "corpus|label|source". A source is a run directory, from which it reads what the
trainer wrote: `best_checkpoint/evaluated_steps.json` (dev whole-frame accuracy of every periodic
evaluation) and `eval_results.json` (the dev-selected checkpoint's dev and test metrics, the
configuration); or a committed benchmark result, `bench/results/<corpus>.json` or
`bench/results/attempts/<name>.json` as bench/nlu_accuracy.py writes them (the same facts, kept
after the run directory is gone; results without a dev curve get a table row but no line).
A source may also be a seeds result, `bench/results/<corpus>_seeds.json` (or an attempt's
`..._seeds.json`, bench/nlu_accuracy.py --seeds): one row and one dev curve per seed ("<label>,
seed N") and a line of the "over seeds" table (mean +- sample std); or an ensemble result,
`bench/results/<corpus>_ensemble.json` (bench/nlu_ensemble.py): a line of that table (one
predictor: no std, no curve).
It writes reports/<name>.md (table + what each run changed), reports/<name>.png (dev whole-frame
accuracy per epoch, one panel per corpus) and reports/<name>_dev_curves.csv.
"""

import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bert_nlu import hooks, io_utils  # noqa: E402  pylint: disable=g-import-not-at-top

HEADLINE = ("intent_accuracy", "slot_f1", "whole_frame_accuracy")
VARIANT_KEYS = (("model", "slot_crf"), ("model", "slot_intent_context"),
                ("model", "head_dropout"), ("model", "encoder_dropout"),
                ("train", "learning_rate"), ("train", "num_train_epochs"),
                ("train", "head_learning_rate_multiplier"), ("train", "train_batch_size"),
                ("train", "layer_learning_rate_decay"), ("train", "weight_average_decay"),
                ("train", "seed"), ("data", "augment_slot_substitution"),
                ("data", "augment_copies"), ("data", "augment_same_intent"))


def _row(corpus: str, label: str, source: str, best_step: int, num_train_steps: int, dev: dict,
         test, evaluated_steps: dict, config: dict) -> dict:
  """One run's report row; `evaluated_steps` is {"step": dev whole-frame accuracy}, turned into
  [(epoch, accuracy)] sorted by epoch; `config` is the run's resolved RunConfig as a dict."""
  steps_per_epoch = num_train_steps / config["train"]["num_train_epochs"]
  return {
      "corpus": corpus, "label": label, "run_dir": source,
      "best_step": best_step, "num_train_steps": num_train_steps, "dev": dev, "test": test,
      "curve": sorted((int(step) / steps_per_epoch, value)
                      for step, value in evaluated_steps.items()),
      "variant": {f"{section}.{key}": config[section].get(key)
                  for section, key in VARIANT_KEYS},
  }


def read_benchmark_result(corpus: str, label: str, path: str) -> dict:
  """One run's row from a bench/nlu_accuracy.py result JSON (published or attempt)."""
  result = io_utils.read_json(path)
  missing = [key for key in ("best_step", "num_train_steps", "dev", "test", "run_config")
             if key not in result]
  if missing:
    raise ValueError(f"{path}: not a bench/nlu_accuracy.py result (missing {missing})")
  return _row(corpus, label, os.path.relpath(path, REPO), result["best_step"],
              result["num_train_steps"], result["dev"], result["test"],
              result.get("dev_whole_frame_accuracy_by_step", {}), result["run_config"])


def read_source(corpus: str, label: str, source: str):
  """(rows, summary) of one --run source: rows as read_run's; summary None, or a line of the
  "over seeds" table {"corpus", "label", "source", "runs", "dev", "test"} where dev/test map a
  metric to {"mean", "std"} (std None for an ensemble, which is one predictor)."""
  if os.path.isfile(source):
    result = io_utils.read_json(source)
    where = os.path.relpath(source, REPO)
    if result.get("benchmark") == "nlu_accuracy_seeds":
      rows = [_row(corpus, f"{label}, seed {run['seed']}", where, run["best_step"],
                   run["num_train_steps"], run["dev"], run["test"],
                   run.get("dev_whole_frame_accuracy_by_step", {}), run["run_config"])
              for run in result["per_seed"]]
      summary = {"corpus": corpus, "label": label, "source": where,
                 "runs": f"seeds {', '.join(str(seed) for seed in result['seeds'])}",
                 **{split: {k: result[split][k] for k in HEADLINE} for split in ("dev", "test")}}
      return rows, summary
    if result.get("benchmark") == "nlu_ensemble":
      summary = {"corpus": corpus, "label": label, "source": where,
                 "runs": f"ensemble of seeds {', '.join(str(seed) for seed in result['seeds'])}",
                 **{split: {k: {"mean": result["splits"][split][k], "std": None}
                            for k in HEADLINE} for split in ("dev", "test")}}
      return [], summary
  return [read_run(corpus, label, source)], None


def read_run(corpus: str, label: str, run_dir: str) -> dict:
  """One run's row from a run directory, or from a result JSON if `run_dir` is a file."""
  if os.path.isfile(run_dir):
    return read_benchmark_result(corpus, label, run_dir)
  results = io_utils.read_json(os.path.join(run_dir, "eval_results.json"))
  curve = io_utils.read_json(os.path.join(run_dir, hooks.BEST_DIR_NAME,
                                          hooks.EVALUATED_STEPS_FILE))
  return _row(corpus, label, run_dir, results["best_step"],
              results["training"]["num_train_steps"], results["splits"]["dev"],
              results["splits"].get("test"), curve, results["config"])


def _mean_std(cell) -> str:
  if cell["mean"] is None:
    return "-"
  if cell["std"] is None:
    return f"{100 * cell['mean']:.2f}"
  return f"{100 * cell['mean']:.2f} +- {100 * cell['std']:.2f}"


def summary_table(summaries) -> list:
  """Markdown lines of the "over seeds" table: one line per seeds result or ensemble."""
  lines = ["| corpus | recipe | runs | dev frame | test intent | test slot F1 | test frame |",
           "|---|---|---|---|---|---|---|"]
  for summary in summaries:
    cells = [_mean_std(summary["dev"]["whole_frame_accuracy"])]
    cells += [_mean_std(summary["test"][k]) for k in HEADLINE]
    lines.append(f"| {summary['corpus']} | {summary['label']} | {summary['runs']} | "
                 + " | ".join(cells) + " |")
  return lines


def markdown(runs, png_name: str, summaries=()) -> str:
  lines = ["# NLU fine-tuning: recipe attempts (all-MiniLM-L6-v2, 22M parameters)", "",
           "Checkpoint selected on DEV whole-frame accuracy; TEST evaluated once with it. "
           "Figures in %.", ""]
  if summaries:
    lines += ["Over seeds (mean +- sample standard deviation; recipes are compared on the dev "
              "mean, never on test):", "", *summary_table(summaries), "", "Every run:", ""]
  lines += ["| corpus | run | best step / total | dev frame | test intent | test slot F1 | "
           "test frame |", "|---|---|---|---|---|---|---|"]
  for run in runs:
    test = run["test"] or {}
    cells = [f"{100 * test[k]:.2f}" if k in test else "-" for k in HEADLINE]
    lines.append(f"| {run['corpus']} | {run['label']} | {run['best_step']} / "
                 f"{run['num_train_steps']} | {100 * run['dev']['whole_frame_accuracy']:.2f} | "
                 + " | ".join(cells) + " |")
  lines += ["", f"![dev whole-frame accuracy per epoch]({png_name})", "",
            "(The chart's y axis starts near the plateau; the first evaluations lie below it. All "
            "points are in the CSV next to this file.)", "",
            "Configurations (None: the setting did not exist in the code version that ran):", ""]
  for run in runs:
    variant = ", ".join(f"{k.split('.', 1)[1]}={v}" for k, v in run["variant"].items())
    lines.append(f"- {run['corpus']} / {run['label']} (`{run['run_dir']}`): {variant}")
  return "\n".join(lines) + "\n"


def write_chart(runs, path: str, csv_path: str) -> None:
  import altair as alt  # pylint: disable=g-import-not-at-top
  import pandas as pd  # pylint: disable=g-import-not-at-top
  rows = [{"corpus": run["corpus"], "run": run["label"], "epoch": epoch,
           "dev_whole_frame_accuracy": 100 * value}
          for run in runs for epoch, value in run["curve"]]
  frame = pd.DataFrame(rows)
  frame.to_csv(csv_path, index=False)
  panels = []
  for corpus in dict.fromkeys(run["corpus"] for run in runs):
    data = frame[frame["corpus"] == corpus]
    low = max(0.0, float(data["dev_whole_frame_accuracy"].quantile(0.2)) - 2)
    panels.append(alt.Chart(data).mark_line(point=True, clip=True).encode(
        x=alt.X("epoch:Q", title="epoch"),
        y=alt.Y("dev_whole_frame_accuracy:Q", title="dev whole-frame accuracy (%)",
                scale=alt.Scale(domain=[low, float(data["dev_whole_frame_accuracy"].max()) + 1])),
        # tableau20: distinct colours for up to 20 runs (the default palette repeats after 10).
        color=alt.Color("run:N", scale=alt.Scale(scheme="tableau20"),
                        legend=alt.Legend(orient="bottom", columns=1, labelLimit=400)),
    ).properties(title=corpus, width=320, height=240))
  alt.hconcat(*panels).save(path, scale_factor=1.5)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--run", action="append", required=True,
                      help='"corpus|label|run directory or result JSON"; repeat')
  parser.add_argument("--name", default="nlu_accuracy")
  parser.add_argument("--notes", default="", help="a Markdown file appended as the findings")
  args = parser.parse_args()
  runs, summaries = [], []
  for spec in args.run:
    parts = spec.split("|")
    if len(parts) != 3:
      parser.error(f"--run {spec!r}: expected 'corpus|label|run directory or result JSON'")
    rows, summary = read_source(*parts)
    runs += rows
    summaries += [summary] if summary else []
  reports = os.path.join(REPO, "reports")
  os.makedirs(reports, exist_ok=True)
  png = os.path.join(reports, f"{args.name}.png")
  write_chart(runs, png, os.path.join(reports, f"{args.name}_dev_curves.csv"))
  text = markdown(runs, os.path.basename(png), summaries)
  if args.notes:
    with open(args.notes, encoding="utf-8") as f:
      text += "\n## Findings\n\n" + f.read()
  io_utils.atomic_write_text(os.path.join(reports, f"{args.name}.md"), text)
  print(text)


if __name__ == "__main__":
  main()
