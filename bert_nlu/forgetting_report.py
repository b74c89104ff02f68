"""Forgetting of sequential fine-tuning: per intent, a model before and after a later stage.

  # Each --after run against the run it continued from (its eval_results.json `warm_start`):
  python -m bert_nlu.forgetting_report --after=runs/play10_alone --output=reports/forgetting
  # Runs of sweeps (@<sweep>/<run name>, looked up under --runs_root), an explicit --before,
  # every run of a sweep:
  python -m bert_nlu.forgetting_report --before=@seq_stage1/ep1_i0 --after=@seq_stage2/a_i0 ...
  python -m bert_nlu.forgetting_report --after_sweep=seq_stage2 --runs_root=/work/runs/sweeps \
      --output=reports/sequential_forgetting
  # Rebuilt from the committed results alone:
  python -m bert_nlu.forgetting_report bench/results/studies/sequential_forgetting.json \
      --output=reports/sequential_forgetting

Both runs of a pair are evaluated on the same dev (and test) sets; the report takes, per intent,
each split's `per_intent` metrics of eval_results.json (bert_nlu.metrics.per_intent_metrics:
intent accuracy, slot F1, whole-frame accuracy over the examples whose GOLD intent it is) and
the split's overall metrics. An intent is "old" when the earlier run trained on it
(`train_intent_counts` > 0), "new" otherwise; the drop is before - after (positive: forgotten,
negative: learned). For a new intent the earlier run never predicts it, so its "before" is 0 for
intent and whole-frame accuracy.

Writes <output>.md (a summary per pair, then every intent), <output>.csv (one row per pair x split
x intent) and <output>.png (a heatmap of the chosen metric's drop on dev, pairs x intents), and
the collected results as JSON (default bench/results/studies/<name>.json) so that the report can
be rebuilt without the run directories.
"""

import datetime
import glob
import os
import sys
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from absl import app, flags

from bert_nlu import io_utils, run_identity
from bert_nlu import sweep  # resolves @<sweep>/<run> references
# Defines --runs_root (bert_nlu.sweep), --output and --findings, shared by the report commands.
from bert_nlu import sweep_report
from bert_nlu.errors import InputError

flags.DEFINE_multi_string("after", [], "[LABEL=]RUN: a run after a later stage (a run directory "
                          "or @<sweep>/<run name>); repeat for several. LABEL names it in the "
                          "report (default: the run's name).")
flags.DEFINE_string("after_sweep", "", "Every run of this sweep (under --runs_root) as an "
                    "--after run, named by its run name.")
flags.DEFINE_string("before", "", "[LABEL=]RUN compared with every --after run (default: each "
                    "--after run's own --init_checkpoint run, from its eval_results.json).")
flags.DEFINE_list("metrics", ["intent_accuracy", "slot_f1", "whole_frame_accuracy"], "Per-intent "
                  "metrics reported (keys of eval_results.json's per_intent entries).")
flags.DEFINE_string("chart_metric", "whole_frame_accuracy", "The metric of the heatmap.")
for _name in ("runs_root", "output", "findings"):  # --output: default reports/forgetting
  flags.declare_key_flag(_name)
flags.DEFINE_string("results", "", "Where the collected results JSON goes (default "
                    "bench/results/studies/<output name>.json).")

RESULTS_VERSION = 1
RESULTS_DIR = os.path.join("bench", "results", "studies")
DEFAULT_METRICS = ("intent_accuracy", "slot_f1", "whole_frame_accuracy")
OVERALL = "(all intents)"  # the row of a split's overall metrics
OLD, NEW = "old", "new"
DEFAULT_OUTPUT = os.path.join("reports", "forgetting")


def resolve_run(spec: str, runs_root: str) -> Tuple[str, str]:
  """"[LABEL=]RUN" -> (label, run directory). RUN is a directory or @<sweep>/<run name>.

  Raises:
    InputError: RUN is not a directory holding eval_results.json (or the reference does not
      resolve: sweep.UnfinishedReference).
  """
  label, sep, run = spec.partition("=")
  if not sep:
    label, run = "", spec
  if run.startswith("@"):
    directory = sweep.resolve_run_reference(run, runs_root)
    label = label or run.rsplit("/", 1)[-1]
  else:
    directory = run
    label = label or os.path.basename(os.path.normpath(run))
  if not os.path.exists(os.path.join(directory, run_identity.RESULTS_FILE)):
    raise InputError(directory, f"no {run_identity.RESULTS_FILE}: not a finished run")
  return label, directory


def sweep_runs(sweep_name: str, runs_root: str) -> List[str]:
  """["@<sweep>/<run name>", ...] of every run in the sweep's index.json, in its order."""
  index_path = os.path.join(runs_root, sweep_name, sweep.INDEX_FILE)
  if not os.path.exists(index_path):
    raise InputError(index_path, f"no index of sweep {sweep_name!r} under --runs_root={runs_root}")
  return [f"@{sweep_name}/{entry['name']}" for entry in io_utils.read_json(index_path)["runs"]]


def sweep_run_name(directory: str, runs_root: str) -> str:
  """The name a sweep under `runs_root` gives the run in `directory` ("" if none does)."""
  target = os.path.realpath(directory)
  for index_path in sorted(glob.glob(os.path.join(glob.escape(runs_root), "*", sweep.INDEX_FILE))):
    for entry in io_utils.read_json(index_path).get("runs", []):
      if os.path.realpath(os.path.join(os.path.dirname(index_path), entry["run_dir"])) == target:
        return entry["name"]
  return ""


def run_record(label: str, directory: str, metrics: Sequence[str]) -> Dict[str, Any]:
  """What the report needs of one run's eval_results.json.

  Returns:
    {"label", "run_dir", "train_intent_counts", "init_run_dir" (its warm start's source run, ""
     without one), "splits": {split: {intent or OVERALL: {metric: value}}}} (each intent also
     with its "count" of examples).
  """
  results = io_utils.read_json(os.path.join(directory, run_identity.RESULTS_FILE))
  splits = {}
  for split, values in results.get("splits", {}).items():
    if "per_intent" not in values:
      continue
    rows = {intent: {m: row[m] for m in (*metrics, "count") if m in row}
            for intent, row in values["per_intent"].items()}
    rows[OVERALL] = {m: values[m] for m in metrics if m in values}
    splits[split] = rows
  if not splits:
    raise InputError(os.path.join(directory, run_identity.RESULTS_FILE),
                     "no split with per_intent metrics (not an NLU run?)")
  return {"label": label, "run_dir": os.path.abspath(directory),
          "train_intent_counts": results.get("train_intent_counts", {}),
          "init_run_dir": results.get("warm_start", {}).get("source_run_dir", ""),
          "splits": splits}


def collect(after_specs: Sequence[str], before_spec: str = "", runs_root: str = "runs/sweeps",
            metrics: Sequence[str] = DEFAULT_METRICS) -> Dict[str, Any]:
  """Reads every (before, after) pair.

  Args:
    after_specs: "[LABEL=]RUN" of each run after a later stage.
    before_spec: "[LABEL=]RUN" of the earlier run of every pair; "" = each after run's own
      warm-start source (its --init_checkpoint run directory), named as a sweep under
      `runs_root` names it.
    runs_root: where @<sweep>/<run> references are looked up.
    metrics: the per-intent metrics to keep.

  Returns:
    {"version", "collected", "metrics", "pairs": [{"before": record, "after": record}]}
    (records: `run_record`).

  Raises:
    InputError: no after run, a run that does not resolve, or (without before_spec) an after run
      that did not continue from a run directory.
  """
  if not after_specs:
    raise InputError("--after", "name at least one run after a later stage (or --after_sweep)")
  before = run_record(*resolve_run(before_spec, runs_root), metrics) if before_spec else None
  pairs = []
  for spec in after_specs:
    after = run_record(*resolve_run(spec, runs_root), metrics)
    earlier = before
    if earlier is None:
      source = after["init_run_dir"]
      if not source:
        raise InputError(after["run_dir"], "did not continue from a run directory (no warm_start "
                         "in its eval_results.json): give --before")
      _, directory = resolve_run(source, runs_root)
      earlier = run_record(sweep_run_name(directory, runs_root) or os.path.basename(
          os.path.normpath(directory)), directory, metrics)
    pairs.append({"before": earlier, "after": after})
  return {"version": RESULTS_VERSION, "metrics": list(metrics), "pairs": pairs,
          "collected": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def intent_rows(results: Mapping[str, Any]) -> List[Dict[str, Any]]:
  """One row per pair x split x intent (splits both runs have; intents of either, OVERALL last):
  {"after", "before", "split", "intent", "role" (OLD / NEW / "" for OVERALL) and per metric "<metric>_before", "<metric>_after", "<metric>_drop" (before - after; None
  where a run lacks the value)}."""
  rows = []
  for pair in results["pairs"]:
    before, after = pair["before"], pair["after"]
    trained_before = {i for i, n in before["train_intent_counts"].items() if n > 0}
    for split in [s for s in after["splits"] if s in before["splits"]]:
      old_rows, new_rows = before["splits"][split], after["splits"][split]
      intents = sorted((set(old_rows) | set(new_rows)) - {OVERALL}) + [OVERALL]
      for intent in intents:
        row = {"after": after["label"], "before": before["label"], "split": split,
               "intent": intent,
               "role": "" if intent == OVERALL else (OLD if intent in trained_before else NEW)}
        for metric in results["metrics"]:
          value_before = old_rows.get(intent, {}).get(metric)
          value_after = new_rows.get(intent, {}).get(metric)
          row[f"{metric}_before"] = value_before
          row[f"{metric}_after"] = value_after
          row[f"{metric}_drop"] = _drop(value_before, value_after)
        rows.append(row)
  return rows


def summary_rows(results: Mapping[str, Any], split: str = "dev") -> List[Dict[str, Any]]:
  """Per pair on `split`: each metric after on the new intents, and on the old ones before,
  after and the drop. Several intents of a role are averaged weighted by their example counts
  (for accuracies: the accuracy over their examples)."""
  rows = []
  for pair in results["pairs"]:
    before, after = pair["before"], pair["after"]
    if split not in after["splits"] or split not in before["splits"]:
      continue
    trained_before = {i for i, n in before["train_intent_counts"].items() if n > 0}
    counts = _example_counts(pair, split)
    row = {"after": after["label"], "before": before["label"]}
    new_intents = [i for i in counts if i not in trained_before]
    old_intents = [i for i in counts if i in trained_before]
    for metric in results["metrics"]:
      row[f"new {metric} after"] = _weighted(after["splits"][split], new_intents, counts, metric)
      before_value = _weighted(before["splits"][split], old_intents, counts, metric)
      after_value = _weighted(after["splits"][split], old_intents, counts, metric)
      row[f"old {metric} before"] = before_value
      row[f"old {metric} after"] = after_value
      row[f"old {metric} drop"] = _drop(before_value, after_value)
    rows.append(row)
  return rows


def _drop(before: Optional[float], after: Optional[float]) -> Optional[float]:
  """before - after, None when either is missing."""
  return None if before is None or after is None else before - after


def _example_counts(pair: Mapping[str, Any], split: str) -> Dict[str, int]:
  """{intent: its examples in `split`} from the runs' per_intent counts (1 where none is kept)."""
  counts = {}
  for record in (pair["after"], pair["before"]):
    for intent, values in record["splits"][split].items():
      if intent != OVERALL and intent not in counts:
        counts[intent] = int(values.get("count", 1))
  return dict(sorted(counts.items()))


def _weighted(rows: Mapping[str, Mapping[str, float]], intents: Sequence[str],
              counts: Mapping[str, int], metric: str) -> Optional[float]:
  """The example-weighted mean of `metric` over `intents` (an intent a run never saw counts 0)."""
  if not intents:
    return None
  total = sum(counts[i] for i in intents)
  return sum(rows.get(i, {}).get(metric, 0.0) * counts[i] for i in intents) / total


def chart_drops(rows: Sequence[Mapping[str, Any]], metric: str, split: str = "dev"):
  """Heatmap: after runs x intents, colour = drop of `metric` in points (red: forgotten, blue:
  learned), text = the value after, in %."""
  import altair as alt  # pylint: disable=g-import-not-at-top
  import pandas as pd  # pylint: disable=g-import-not-at-top
  data = pd.DataFrame([
      {"after run": row["after"], "intent": f"{row['intent']} ({row['role']})" if row["role"]
       else row["intent"], "drop": 100 * row[f"{metric}_drop"],
       "after": "" if row[f"{metric}_after"] is None else f"{100 * row[f'{metric}_after']:.0f}"}
      for row in rows if row["split"] == split and row[f"{metric}_drop"] is not None])
  if data.empty:
    raise InputError(metric, f"no {split} values of {metric} to chart")
  limit = max(1.0, float(data["drop"].abs().max()))
  base = alt.Chart(data).encode(
      x=alt.X("intent:N", sort=list(dict.fromkeys(data["intent"])), title=None),
      y=alt.Y("after run:N", sort=list(dict.fromkeys(data["after run"])), title=None))
  cells = base.mark_rect().encode(color=alt.Color(
      "drop:Q", scale=alt.Scale(scheme="redblue", domain=[-limit, limit], reverse=True),
      title="drop (points)"))
  text = base.mark_text(fontSize=10).encode(text="after:N")
  return (cells + text).properties(
      title=f"{split} {metric}: drop before -> after (colour), value after in % (text)",
      width=max(240, 70 * data["intent"].nunique()), height=max(80, 22 * data["after run"].nunique()))


def _format(value: Any) -> str:
  if value is None:
    return ""
  if isinstance(value, float):
    return f"{100 * value:.2f}"
  return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
  """Rows as a GitHub markdown table; fractions shown in % with 2 decimals."""
  lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
  lines += ["| " + " | ".join(_format(row.get(c)) for c in columns) + " |" for row in rows]
  return "\n".join(lines)


def write_report(results: Mapping[str, Any], output: str, chart_metric: str = "",
                 rebuild_command: str = "", findings: str = "") -> Dict[str, str]:
  """Writes <output>.md, <output>.csv and <output>.png; returns {what: path}."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  metrics = results["metrics"]
  chart_metric = chart_metric or metrics[-1]
  if chart_metric not in metrics:
    raise InputError(chart_metric, f"the chart metric must be one of {', '.join(metrics)}")
  rows = intent_rows(results)
  name = os.path.basename(output)
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  written = {"csv": output + ".csv", "png": output + ".png", "md": output + ".md"}
  with io_utils.atomic_path(written["csv"]) as tmp_path:
    pd.DataFrame(rows).to_csv(tmp_path, index=False)
  with io_utils.atomic_path(written["png"]) as tmp_path, warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*narwhals.*", category=UserWarning)
    chart_drops(rows, chart_metric).save(tmp_path, format="png", scale_factor=1.5)
  lines = [f"# Forgetting: `{name}`", "",
           f"{len(results['pairs'])} runs after a later stage, each against the run it continued "
           f"from, on the same dev (and test) sets (collected {results.get('collected', '?')}). "
           "Values in %; drop = before - after (positive: forgotten). \"old\": intents the "
           "earlier run trained on; \"new\": the others (never predicted before).", ""]
  if findings:
    lines += [findings.strip(), ""]
  if rebuild_command:
    lines += ["Rebuild this report from the committed results:", "", "```bash", rebuild_command,
              "```", ""]
  summary_columns = ["after", "before"] + [
      f"{role} {metric} {when}" for metric in metrics
      for role, when in ((NEW, "after"), (OLD, "before"), (OLD, "after"), (OLD, "drop"))]
  for split in ("dev", "test"):
    summary = summary_rows(results, split)
    if summary:
      lines += [f"## Summary ({split})", "",
                "Several old (or new) intents are averaged weighted by their examples (for "
                "accuracies, the accuracy over their examples).", "",
                markdown_table(summary, summary_columns), ""]
  lines += [f"![{chart_metric} drop]({name}.png)", "", "## Per intent", ""]
  intent_columns = ["after", "split", "intent", "role"] + [
      f"{metric}_{when}" for metric in metrics for when in ("before", "after", "drop")]
  lines += [markdown_table(rows, intent_columns), ""]
  io_utils.atomic_write_text(written["md"], "\n".join(lines))
  return written


def report_forgetting(after_specs: Sequence[str] = (), after_sweep: str = "",
                      before_spec: str = "", runs_root: str = "runs/sweeps",
                      metrics: Sequence[str] = DEFAULT_METRICS,
                      output: str = "", results_path: str = "",
                      from_results: str = "", chart_metric: str = "whole_frame_accuracy",
                      findings_path: str = "") -> Dict[str, str]:
  """What the command does: collects the pairs (or loads `from_results`) and writes the report.

  Args:
    after_specs, before_spec, runs_root, metrics: as `collect`.
    after_sweep: every run of this sweep is also an after run.
    output: report path without extension ("" = DEFAULT_OUTPUT).
    results_path: where the collected JSON goes ("" = bench/results/studies/<output name>.json).
    from_results: a collected JSON to rebuild the report from (nothing is collected).
    chart_metric: the heatmap's metric.
    findings_path: markdown under the title ("" = reports/notes/<output name>.md if it exists).

  Returns:
    {what: path} of the files written (the results JSON as "results").
  """
  output = output or DEFAULT_OUTPUT
  name = os.path.basename(output)
  if from_results:
    results_path = from_results
    results = io_utils.read_json(results_path)
  else:
    after = list(after_specs) + (sweep_runs(after_sweep, runs_root) if after_sweep else [])
    results = collect(after, before_spec, runs_root, metrics)
    results_path = results_path or os.path.join(RESULTS_DIR, f"{name}.json")
    io_utils.atomic_write_json(results_path, results)
  findings = sweep_report.read_findings(
      findings_path or os.path.join("reports", "notes", f"{name}.md"),
      required=bool(findings_path))
  written = write_report(
      results, output, chart_metric,
      rebuild_command=f"python -m bert_nlu.forgetting_report {results_path} --output={output}",
      findings=findings)
  return dict(written, results=results_path)


def main(argv):
  if len(argv) > 2:
    raise app.UsageError("usage: python -m bert_nlu.forgetting_report [RESULTS_JSON] "
                         "(--after=RUN ... | --after_sweep=SWEEP) [--before=RUN] --output=NAME")
  options = flags.FLAGS
  try:
    written = report_forgetting(
        options.after, options.after_sweep, options.before, options.runs_root, options.metrics,
        options.output, options.results, argv[1] if len(argv) == 2 else "",
        options.chart_metric, options.findings)
  except (InputError, OSError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  for what, path in written.items():
    print(f"{what}: {path}")
  return 0


def run_main():
  app.run(main)


if __name__ == "__main__":
  run_main()
