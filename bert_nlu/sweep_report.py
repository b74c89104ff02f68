"""Writes a sweep's report: reports/<sweep>.md with tables and PNG charts.

  # From the run directories (collects them into bench/results/sweeps/<sweep>.json first):
  python -m bert_nlu.sweep_report configs/sweeps/mrpc_lr_batch.sweep --output=reports/mrpc_lr_batch
  # From the committed results alone (no run directories needed):
  python -m bert_nlu.sweep_report bench/results/sweeps/mrpc_lr_batch.json \
      --output=reports/mrpc_lr_batch

What it draws depends on the grid, i.e. the grid flags plus batch size and learning rate when
named variants vary them (charts are PNGs next to the .md, altair + vl-convert):
  - learning_rate in the grid: final dev metric vs learning rate, one point per instance, a mean
    line per batch size;
  - train_batch_size in the grid: final dev metric vs batch size, points per instance, a mean line
    (per learning rate when that varies too);
  - train_batch_size in the grid: mean dev metric vs training examples seen (step x batch size),
    one line per batch size (at each batch size's best setting of the other grid flags);
  - runs with a GLUE task: a table task x (main metric, second metric, training minutes) at each
    task's best grid point on dev;
  - none of the above (variants or other grid flags only): the final dev metric per configuration
    (variant and grid point), a point per instance and the mean, in the sweep file's order;
  - with --speed: the mean final dev metric against mean training and prediction examples per
    second, a point per configuration.
Always: a table of every grid point (mean, std, min, max of the final dev metric over instances),
with --columns (other dev metrics, e.g. whole_frame_accuracy) and with --speed (training and dev
prediction examples per second, parameters) as more columns of means.
The metric may be any dev metric of the runs' eval_results.json, per intent too:
`--metric=per_intent.PlayMusic.whole_frame_accuracy`.
"""

import os
import sys
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence

from absl import app, flags, logging

from bert_nlu import io_utils, sweep_results, sweep_spec
from bert_nlu import sweep  # noqa: F401  pylint: disable=unused-import  (defines --runs_root)
from bert_nlu.errors import InputError

flags.DEFINE_string("output", "", "Report path without extension (default reports/<sweep>): "
                    "writes <output>.md, <output>_<chart>.png and <output>.csv.")
flags.declare_key_flag("runs_root")  # defined by bert_nlu.sweep: one flag for both commands
flags.DEFINE_string("results_dir", "bench/results/sweeps", "Where the collected results JSON goes.")
flags.DEFINE_string("findings", "", "Markdown of what the sweep shows, put under the report's title "
                    "(default: reports/notes/<sweep>.md when it exists). Kept apart from the "
                    "generated report so that rebuilding it keeps the text.")
flags.DEFINE_string("metric", "", "Dev metric to report (default: the sweep's `metric`, else the "
                    "runs' selection metric); per intent: per_intent.<intent>.<metric>.")
flags.DEFINE_list("columns", [], "More dev metrics (or run columns) shown as means per grid point "
                  "in the table, e.g. whole_frame_accuracy,per_intent.PlayMusic.slot_f1.")
flags.DEFINE_bool("speed", False, "Also report training and dev prediction examples per second "
                  "and parameters per grid point, and chart the metric against both speeds.")

# --speed: the columns added to the table (run columns, or final dev metrics without "final_").
SPEED_COLUMNS = ("train_examples_per_second", "prediction_examples_per_second", "parameters",
                 "trainable_parameters")
COUNT_COLUMNS = ("parameters", "trainable_parameters")  # shown as integers

# GLUE table: the (main, second) metric shown per task, as GLUE reports them.
GLUE_TABLE_METRICS = {
    "MRPC": ("accuracy", "f1"), "QQP": ("accuracy", "f1"), "STS-B": ("pearson", "spearman"),
    "CoLA": ("matthews_corrcoef", "accuracy"), "SST-2": ("accuracy", ""),
    "QNLI": ("accuracy", ""), "RTE": ("accuracy", ""), "WNLI": ("accuracy", ""),
    "MNLI": ("accuracy", ""), "MNLI-mm": ("accuracy", ""), "SNLI": ("accuracy", ""),
}
# The same-weights floor of the GLUE table: a plain PyTorch/HF fine-tune of the bundled
# all-MiniLM-L6-v2 (pooled [CLS] head, 3 epochs, lr 1e-4, batch 32, 128 tokens; dev), from
# ../shared/DESIGN.md section 6. {task: (metric, value)}; a task without one shows "-".
GLUE_FLOORS = {"MRPC": (("accuracy", 0.792), ("f1", 0.857)), "RTE": (("accuracy", 0.560),),
               "STS-B": (("pearson", 0.865),), "CoLA": (("matthews_corrcoef", 0.280),)}


def report_metric(results: Mapping[str, Any], requested: str = "") -> str:
  """The metric to report: `requested`, else the sweep's, else the runs' selection metric.

  When the runs select by different metrics (GLUE tasks), "selection": each run's own selection
  metric (sweep_results.SELECTION_COLUMN).
  """
  metric = requested or results.get("metric") or ""
  if not metric:
    selections = {run["selected_by"] for run in results["runs"] if run["selected_by"]}
    if len(selections) != 1:
      return sweep_results.SELECTION_COLUMN
    metric = selections.pop()
  return metric


def final_table(frame, metric: str, group_columns: Sequence[str],
                extra_columns: Sequence[str] = ()):
  """Per grid point: runs, mean/std/min/max of final_<metric>, mean training minutes, and the
  mean of each of `extra_columns` (a final dev metric's name, or a run column such as
  train_examples_per_second), in the sweep's order of the grid points."""
  finals = frame.drop_duplicates("run")
  column = f"final_{metric}"
  if column not in finals:
    raise InputError(metric, f"no run has a final dev {metric!r}; metrics: "
                     + ", ".join(c[len("final_"):] for c in finals if c.startswith("final_")))
  groups = list(group_columns) or ["sweep"]
  extras = {}
  for name in extra_columns:
    source = f"final_{name}" if f"final_{name}" in finals else name
    if source not in finals:
      raise InputError(name, f"--columns: no run has {name!r}")
    extras[name] = (source, "mean")
  table = finals.groupby(groups, dropna=False, sort=False).agg(
      runs=(column, "size"), mean=(column, "mean"), std=(column, "std"), min=(column, "min"),
      max=(column, "max"), train_minutes=("train_minutes", "mean"), **extras).reset_index()
  for name in extras:
    if name in COUNT_COLUMNS:
      table[name] = table[name].round().astype("Int64")
  return table


def markdown_table(frame) -> str:
  """A pandas DataFrame as a GitHub markdown table (floats: 4 decimals, small ones 3 digits)."""
  header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
  rule = "|" + "|".join("---" for _ in frame.columns) + "|"
  lines = [header, rule]
  for row in frame.itertuples(index=False):
    cells = []
    for value in row:
      if isinstance(value, float):
        if value != value:  # NaN
          cells.append("")
        elif value and abs(value) < 0.01:
          cells.append(f"{value:.3g}")
        else:
          cells.append(f"{value:.4f}")
      else:
        cells.append(str(value))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _save_chart(chart, path: str) -> str:
  with io_utils.atomic_path(path) as tmp_path, warnings.catch_warnings():
    # altair 5.4 warns about its own narwhals wrapper of the pandas frame; harmless.
    warnings.filterwarnings("ignore", message=".*narwhals.*", category=UserWarning)
    chart.save(tmp_path, format="png", scale_factor=1.5)
  return path


def altair_field(column: str) -> str:
  """A DataFrame column as an altair field name: dots escaped (altair reads "a.b" as nested)."""
  return column.replace(".", "\\.")


def chart_metric_vs_grid_flag(frame, metric: str, x_flag: str, color_flag: Optional[str],
                              log_base: int):
  """Final dev metric vs a grid flag: a point per instance, a mean line per `color_flag` value."""
  import altair as alt  # pylint: disable=g-import-not-at-top
  finals = frame.drop_duplicates("run")
  column = altair_field(f"final_{metric}")
  x = alt.X(f"{x_flag}:Q", scale=alt.Scale(type="log", base=log_base, nice=False, padding=20),
            title=x_flag)
  y = alt.Y(f"{column}:Q", scale=alt.Scale(zero=False), title=f"final dev {metric}")
  color = alt.Color(f"{color_flag}:N", title=color_flag) if color_flag else alt.value("steelblue")
  points = alt.Chart(finals).mark_point(opacity=0.6).encode(
      x=x, y=y, color=color, tooltip=["run", column])
  means = alt.Chart(finals).mark_line(point=True).encode(x=x, y=f"mean({column}):Q", color=color)
  return (points + means).properties(
      width=420, height=300, title=f"{metric} vs {x_flag} (points: instances; lines: means)")


def configuration_labels(finals, group_columns: Sequence[str]) -> List[str]:
  """Per row: its variant and grid values, e.g. "resample layers=4" ("all runs" without any)."""
  labels = []
  for _, row in finals.iterrows():
    parts = [str(row[c]) if c == "variant" else f"{c}={row[c]}" for c in group_columns]
    labels.append(" ".join(p for p in parts if p) or "all runs")
  return labels


def chart_metric_per_configuration(frame, metric: str, group_columns: Sequence[str]):
  """Final dev metric per configuration (variant + grid point), in the sweep's order: a point
  per instance and a black tick at the mean."""
  import altair as alt  # pylint: disable=g-import-not-at-top
  finals = frame.drop_duplicates("run").copy()
  finals["configuration"] = configuration_labels(finals, group_columns)
  finals["value"] = finals[f"final_{metric}"]
  x = alt.X("configuration:N", sort=list(dict.fromkeys(finals["configuration"])), title=None,
            axis=alt.Axis(labelAngle=-40, labelLimit=260))
  y = alt.Y("value:Q", scale=alt.Scale(zero=False), title=f"final dev {metric}")
  points = alt.Chart(finals).mark_point(opacity=0.7).encode(x=x, y=y, tooltip=["run", "value"])
  means = alt.Chart(finals).mark_tick(color="black", thickness=2, size=18).encode(
      x=x, y="mean(value):Q")
  return (points + means).properties(
      width=max(300, 45 * finals["configuration"].nunique()), height=300,
      title=f"{metric} per configuration (points: instances; ticks: means)")


def chart_metric_vs_speed(frame, metric: str, group_columns: Sequence[str], speed_column: str,
                          speed_title: str):
  """Mean final dev metric vs mean examples per second, a labelled point per configuration."""
  import altair as alt  # pylint: disable=g-import-not-at-top
  finals = frame.drop_duplicates("run").copy()
  finals["configuration"] = configuration_labels(finals, group_columns)
  means = finals.groupby("configuration", sort=False).agg(
      value=(f"final_{metric}", "mean"), speed=(speed_column, "mean")).reset_index()
  base = alt.Chart(means.dropna()).encode(
      x=alt.X("speed:Q", scale=alt.Scale(zero=False, padding=30), title=speed_title),
      y=alt.Y("value:Q", scale=alt.Scale(zero=False, padding=20),
              title=f"mean final dev {metric}"))
  return (base.mark_point(filled=True, size=60)
          + base.mark_text(align="left", dx=7, fontSize=10).encode(text="configuration:N")
          ).properties(width=420, height=300, title=f"{metric} vs {speed_title}")


def best_settings(frame, metric: str, by: str, other_flags: Sequence[str]):
  """Rows of `frame` at each `by` value's best setting (mean final metric) of `other_flags`."""
  if not other_flags:
    return frame
  finals = frame.drop_duplicates("run")
  means = finals.groupby([by, *other_flags])[f"final_{metric}"].mean().reset_index()
  best = means.loc[means.groupby(by)[f"final_{metric}"].idxmax(), [by, *other_flags]]
  return frame.merge(best, on=[by, *other_flags])


def chart_metric_vs_examples(frame, metric: str, by: str = "train_batch_size"):
  """Mean dev metric (over instances) vs training examples seen, one line per `by` value."""
  import altair as alt  # pylint: disable=g-import-not-at-top
  curves = frame.dropna(subset=["step", metric]).groupby([by, "step"]).agg(
      examples_seen=("examples_seen", "first"), value=(metric, "mean")).reset_index()
  return alt.Chart(curves).mark_line(point=True).encode(
      x=alt.X("examples_seen:Q", title="training examples seen (step x batch size)"),
      y=alt.Y("value:Q", scale=alt.Scale(zero=False), title=f"mean dev {metric}"),
      color=alt.Color(f"{by}:N", title=by)).properties(
          width=420, height=300, title=f"dev {metric} during training (mean over instances)")


def glue_table(frame, grid_flags: Sequence[str]):
  """Task x (main metric, second metric, training minutes) at each task's best grid point on dev.

  Each row also names the task's same-weights floor (GLUE_FLOORS) and whether the mean over
  instances reaches every floor metric.

  The grid point (e.g. the learning rate), and the variant where one task has several (e.g.
  configurations of CoLA), is chosen per task by the mean over instances of the runs' selection
  metric (the GLUE convention, e.g. MCC for CoLA); the metrics shown are the ones GLUE reports
  (GLUE_TABLE_METRICS). Returns None when no run has a GLUE task.
  """
  import pandas as pd  # pylint: disable=g-import-not-at-top
  finals = frame.drop_duplicates("run")
  finals = finals[finals["task"].isin(list(GLUE_TABLE_METRICS))]
  if finals.empty:
    return None
  other = [f for f in grid_flags if f != "glue_task"]
  rows = []
  for task, runs in finals.groupby("task"):
    selection = f"final_{runs['selected_by'].iloc[0]}"
    choice = other + (["variant"] if runs["variant"].nunique() > 1 else [])
    if choice:
      best = runs.groupby(choice)[selection].mean().idxmax()
      best = best if isinstance(best, tuple) else (best,)
      for flag, value in zip(choice, best):
        runs = runs[runs[flag] == value]
    main, second = GLUE_TABLE_METRICS[task]
    row = {"task": task, "main metric": main, "main": _mean(runs, main),
           "second metric": second, "second": _mean(runs, second),
           "training minutes": runs["train_minutes"].mean(), "instances": len(runs),
           "selected by": selection[len("final_"):]}
    for flag in choice:
      row[flag] = runs[flag].iloc[0]
    floors = GLUE_FLOORS.get(task, ())
    row["floor"] = ", ".join(f"{metric} {value:.3f}" for metric, value in floors) or "-"
    row["meets floor"] = (all(_mean(runs, metric) >= value for metric, value in floors)
                          if floors else "-")
    rows.append(row)
  return pd.DataFrame(rows)


def _mean(runs, metric: str) -> float:
  column = f"final_{metric}"
  return runs[column].mean() if metric and column in runs else float("nan")


def varying_flags(frame, grid_flags: Sequence[str]) -> List[str]:
  """The grid flags, plus batch size and learning rate when variants make them vary."""
  finals = frame.drop_duplicates("run")
  extra = [c for c in ("train_batch_size", "learning_rate")
           if c not in grid_flags and finals[c].nunique() > 1]
  return list(grid_flags) + extra


def learning_rate_lines(grid_flags: Sequence[str], groups: Sequence[str]) -> Optional[str]:
  """The column that splits the learning-rate chart into mean lines (None: one line).

  A line per batch size when the batch size varies; else a line per variant when there are
  variants (e.g. one per GLUE task, whose metrics do not average into one line).
  """
  if "train_batch_size" in grid_flags:
    return "train_batch_size"
  return "variant" if "variant" in groups else None


def write_report(results: Mapping[str, Any], output: str, metric: str = "",
                 rebuild_command: str = "", findings: str = "", columns: Sequence[str] = (),
                 speed: bool = False) -> Dict[str, str]:
  """Writes <output>.md, <output>.csv and the charts; returns {what: path}.

  `findings` (markdown, e.g. what the numbers show) goes under the title as written. `columns`:
  more dev metrics or run columns shown as means in the table; `speed`: the SPEED_COLUMNS too,
  and the metric charted against training and prediction examples per second.
  """
  frame = sweep_results.to_dataframe(results)
  if frame.empty:
    raise InputError(output, f"sweep {results['sweep']} has no finished run to report")
  metric = report_metric(results, metric)
  grid_flags = varying_flags(frame, results["grid_flags"])
  name = os.path.basename(output)
  written = {"csv": output + ".csv"}
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  with io_utils.atomic_path(written["csv"]) as tmp_path:
    frame.to_csv(tmp_path, index=False)
  groups = (["variant"] if frame["variant"].astype(bool).any() else []) + grid_flags
  lines = [f"# Sweep `{results['sweep']}`", "",
           f"{frame['run'].nunique()} runs from `{results['sweep_file']}` (collected "
           f"{results.get('collected', '?')}); metric: dev `{metric}` of each run's best "
           "checkpoint.", ""]
  if metric == sweep_results.SELECTION_COLUMN:
    lines += ["`selection` is each run's own selection metric (GLUE: MCC for CoLA, the mean of "
              "Pearson and Spearman for STS-B, the mean of accuracy and F1 for MRPC and QQP, "
              "accuracy otherwise).", ""]
  if findings:
    lines += [findings.strip(), ""]
  if results.get("missing"):
    lines += [f"Not finished (left out): {', '.join(results['missing'])}.", ""]
  recorded = sorted({run["recorded_in"] for run in results["runs"] if run.get("recorded_in")})
  if recorded:
    count = sum(1 for run in results["runs"] if run.get("recorded_in"))
    lines += [f"{count} runs were trained earlier (another session or machine) and are taken from "
              f"the results they were recorded in: {', '.join(recorded)}.", ""]
  if rebuild_command:
    lines += ["Rebuild this report from the committed results:", "", "```bash",
              rebuild_command, "```", ""]
  extra_columns = list(columns) + [c for c in SPEED_COLUMNS if speed and c not in columns]
  lines += ["## Final dev metric per grid point", "",
            markdown_table(final_table(frame, metric, groups, extra_columns)), ""]
  if extra_columns:
    lines += ["The columns after `train_minutes` are means over instances (dev metrics of the "
              "best checkpoint; examples per second of training and of dev prediction).", ""]
  glue = glue_table(frame, grid_flags)
  if glue is not None:
    lines += ["## GLUE tasks (dev; grid point chosen on dev)", "", markdown_table(glue), "",
              "`floor`: a plain PyTorch/HF fine-tune of the same all-MiniLM-L6-v2 weights (pooled "
              "[CLS] head, 3 epochs, lr 1e-4, batch 32, 128 tokens), dev.", ""]
  charts = []
  if "learning_rate" in grid_flags:
    color = learning_rate_lines(grid_flags, groups)
    charts.append(("learning_rate", chart_metric_vs_grid_flag(frame, metric, "learning_rate",
                                                              color, 10)))
  if "train_batch_size" in grid_flags:
    color = "learning_rate" if "learning_rate" in grid_flags else None
    charts.append(("batch_size", chart_metric_vs_grid_flag(frame, metric, "train_batch_size",
                                                           color, 2)))
    if metric in frame:
      others = [f for f in grid_flags if f != "train_batch_size"]
      charts.append(("examples_seen", chart_metric_vs_examples(
          best_settings(frame, metric, "train_batch_size", others), metric)))
  if not charts:
    charts.append(("configurations", chart_metric_per_configuration(frame, metric, groups)))
  if speed:
    charts.append(("training_speed", chart_metric_vs_speed(
        frame, metric, groups, "train_examples_per_second", "training examples per second")))
    charts.append(("prediction_speed", chart_metric_vs_speed(
        frame, metric, groups, "final_prediction_examples_per_second",
        "dev prediction examples per second")))
  for chart_name, chart in charts:
    path = _save_chart(chart, f"{output}_{chart_name}.png")
    written[chart_name] = path
    lines += [f"![{chart_name}]({name}_{chart_name}.png)", ""]
  if any(chart_name == "examples_seen" for chart_name, _ in charts) and len(grid_flags) > 1:
    lines += ["The examples-seen chart shows each batch size at its best setting of the other "
              "grid flags (by mean final dev metric).", ""]
  written["md"] = output + ".md"
  io_utils.atomic_write_text(written["md"], "\n".join(lines))
  return written


def read_findings(path: str, required: bool) -> str:
  """The markdown at `path`; "" when it does not exist, unless `required` (InputError)."""
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      return f.read()
  if required:
    raise InputError(path, "--findings: no such file")
  return ""


def report_sweep(source: str, output: str = "", runs_root: str = "runs/sweeps",
                 results_dir: str = "bench/results/sweeps", metric: str = "",
                 columns: Sequence[str] = (), speed: bool = False,
                 findings_path: str = "") -> Dict[str, str]:
  """What the command does: collects a sweep (or loads its results JSON) and writes its report.

  Args:
    source: a sweep file (its runs under `runs_root` are collected into
      <results_dir>/<sweep>.json first; a run whose directory is gone is taken from the results
      files of `results_dir` if they record it) or a results JSON.
    output: report path without extension ("" = reports/<sweep>).
    metric, columns, speed: as write_report.
    findings_path: markdown put under the title ("" = reports/notes/<sweep>.md if it exists).

  Returns:
    {what: path} of the files written (the results JSON as "results").
  """
  if source.endswith(".json"):
    results = sweep_results.load_results(source)
    results_path = source
  else:
    spec = sweep_spec.read_sweep_file(source)
    results = sweep_results.collect_sweep(os.path.join(runs_root, spec.name),
                                          sweep_results.recorded_runs(results_dir))
    results_path = sweep_results.default_results_path(spec.name, results_dir)
    sweep_results.save_results(results, results_path)
  output = output or os.path.join("reports", results["sweep"])
  command = f"python -m bert_nlu.sweep_report {results_path} --output={output}"
  for name, value in (("metric", metric), ("columns", ",".join(columns))):
    command += f" --{name}={value}" if value else ""
  command += " --speed" if speed else ""
  findings = read_findings(
      findings_path or os.path.join("reports", "notes", f"{results['sweep']}.md"),
      required=bool(findings_path))
  written = write_report(results, output, metric, rebuild_command=command, findings=findings,
                         columns=columns, speed=speed)
  return dict(written, results=results_path)


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("usage: python -m bert_nlu.sweep_report (SWEEP_FILE | RESULTS_JSON) "
                         "[--output=reports/NAME]")
  options = flags.FLAGS
  logging.set_verbosity(logging.WARNING)  # TensorBoard's event reader logs every file at INFO
  try:
    written = report_sweep(argv[1], options.output, options.runs_root, options.results_dir,
                           options.metric, options.columns, options.speed, options.findings)
  except InputError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  for what, path in written.items():
    print(f"{what}: {path}")
  return 0


def run_main():
  app.run(main)


if __name__ == "__main__":
  run_main()
