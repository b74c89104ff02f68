"""Collects a sweep's runs into a compact results JSON and one pandas DataFrame.

  collect_sweep(sweep_dir) -> results       # reads the run directories (index.json of the sweep)
  recorded_runs(results_dir) -> {hash: run} # the finished runs committed results files record
  save_results / load_results               # bench/results/sweeps/<sweep>.json, committed
  to_dataframe(results) -> DataFrame        # one row per run x dev evaluation

From each run: `eval_results.json` (the best checkpoint's final metrics, its step, the selection
metric, the training time) and the TensorBoard event files of `eval_dev/` (every periodic dev
evaluation: step -> metrics). The results JSON holds exactly what reports need, so a report is
rebuilt from it without the run directories (which hold checkpoints and are not committed).
"""

import copy
import dataclasses
import datetime
import numbers
import os
from typing import Any, Dict, List, Mapping, Optional

from bert_nlu import io_utils, run_dir, run_identity
from bert_nlu.errors import InputError

RESULTS_VERSION = 1
SELECTION_COLUMN = "selection"  # each row's value of its run's own selection metric
EVAL_DIR = "eval_dev"
# Columns of every DataFrame row besides the grid flags and the metrics.
RUN_COLUMNS = ("sweep", "run", "hash", "variant", "instance", "seed", "train_batch_size",
               "learning_rate", "num_train_epochs", "task", "selected_by", "best_step",
               "train_minutes", "train_examples_per_second", "parameters", "trainable_parameters")
# Keys of a run record copied into every DataFrame row of the run, as columns of the same name
# (None for results collected before they were recorded).
SPEED_AND_SIZE = ("train_examples_per_second", "parameters", "trainable_parameters")


def collect_sweep(sweep_dir: str,
                  recorded: Optional[Mapping[str, "RecordedRun"]] = None) -> Dict[str, Any]:
  """Reads every run of the sweep in `sweep_dir` (its index.json, written by bert_nlu.sweep).

  A run whose directory has no eval_results.json but whose hash is in `recorded` (recorded_runs:
  a finished run of an earlier machine or session, committed in a results file) is taken from
  that record, under this sweep's name, grid values and instance, with "recorded_in" naming the
  file.

  Returns:
    {"version", "sweep", "sweep_file", "metric", "grid_flags", "collected", "runs": [run]} where
    a run is {"name", "hash", "variant", "grid", "instance", "seed", "settings" (the identity's
    non-default config keys), "train_batch_size", "learning_rate", "num_train_epochs", "task",
    "selected_by", "best_step", "train_seconds", "train_examples_per_second", "parameters",
    "trainable_parameters", "final": {split: {metric: value}} (per-intent metrics as
    "per_intent.<intent>.<metric>"), "evaluations": [{"step", metric: value, ...}]}; runs without
    eval_results.json (and not recorded) are skipped and listed in "missing".

  Raises:
    InputError: the sweep directory has no index.json.
  """
  index_path = os.path.join(sweep_dir, "index.json")
  if not os.path.exists(index_path):
    raise InputError(index_path, "no sweep index: run `python -m bert_nlu.sweep SWEEP_FILE` first")
  index = io_utils.read_json(index_path)
  runs, missing = [], []
  grid_flags: List[str] = []
  for entry in index["runs"]:
    for flag in entry["grid"]:
      if flag not in grid_flags:
        grid_flags.append(flag)
    directory = os.path.join(sweep_dir, entry["run_dir"])
    results_path = os.path.join(directory, run_identity.RESULTS_FILE)
    if os.path.exists(results_path):
      runs.append(collect_run(entry, io_utils.read_json(results_path), directory))
    elif recorded and entry["hash"] in recorded:
      runs.append(recorded[entry["hash"]].as_run_of(entry))
    else:
      missing.append(entry["name"])
  return {
      "version": RESULTS_VERSION, "sweep": index["sweep"], "sweep_file": index["sweep_file"],
      "metric": index.get("metric", ""), "grid_flags": grid_flags,
      "collected": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "missing": missing, "runs": runs,
  }


def collect_run(entry: Mapping[str, Any], results: Mapping[str, Any],
                directory: str) -> Dict[str, Any]:
  """One run's compact record from its index entry, eval_results.json and eval_dev events."""
  config = results["config"]
  training = results.get("training", {})
  model = results.get("model", {})
  selected_by = results.get("selected_by", "")
  return {
      "name": entry["name"], "hash": entry["hash"], "variant": entry["variant"],
      "grid": entry["grid"], "instance": entry["instance"], "seed": entry["seed"],
      "settings": run_identity.identity_config(config),
      "train_batch_size": config["train"]["train_batch_size"],
      "learning_rate": config["train"]["learning_rate"],
      "num_train_epochs": config["train"]["num_train_epochs"],
      "task": task_name(config),
      "selected_by": selected_by.split()[-1] if selected_by else "",
      "best_step": results.get("best_step"),
      "train_seconds": training.get("wall_seconds"),
      "train_examples_per_second": training.get("train_examples_per_second"),
      "parameters": model.get("parameters"),
      "trainable_parameters": model.get("trainable_parameters"),
      "final": {split: scalar_metrics(values) for split, values in results["splits"].items()},
      "evaluations": read_evaluations(os.path.join(directory, EVAL_DIR)),
  }


@dataclasses.dataclass(frozen=True)
class RecordedRun:
  """A finished run as a committed results file records it (the run directory may be gone).

  Attributes:
    record: the run's record in that file (collect_run's format).
    path: the results file.
  """
  record: Mapping[str, Any]
  path: str

  def as_run_of(self, entry: Mapping[str, Any]) -> Dict[str, Any]:
    """The record as a run of the sweep whose index entry is `entry` (its name, variant, grid
    values, instance and seed; the configuration is the same, since the hash is)."""
    run = copy.deepcopy(dict(self.record))
    run.update({key: entry[key] for key in ("name", "variant", "grid", "instance", "seed")})
    run["recorded_in"] = self.path
    return run


def recorded_runs(results_dir: str) -> Dict[str, RecordedRun]:
  """Hash -> RecordedRun of every finished run recorded in the results files of `results_dir`.

  A run's hash covers its complete configuration and the fingerprints of its data and weights
  (bert_nlu.run_identity), so a recorded run is the run a sweep would train: the sweep engine
  reuses it instead of retraining it when its directory is gone (a new machine). Files are read in
  name order; a hash recorded twice keeps its first record. A missing directory records nothing.

  Raises:
    InputError: a results file cannot be read.
  """
  if not results_dir or not os.path.isdir(results_dir):
    return {}
  recorded: Dict[str, RecordedRun] = {}
  for name in sorted(os.listdir(results_dir)):
    if not name.endswith(".json"):
      continue
    path = os.path.join(results_dir, name)
    for run in load_results(path)["runs"]:
      if run.get("final") and run.get("hash"):
        recorded.setdefault(run["hash"], RecordedRun(run, path))
  return recorded


def task_name(config: Mapping[str, Any]) -> str:
  """The GLUE task of a run's config if it has one (a "glue_task" field), else the data folder."""
  flat = run_dir.flatten(dict(config))
  for key, value in flat.items():
    if key.endswith("glue_task") and value:
      return str(value)
  data_dir = flat.get("data.data_dir") or ""
  return os.path.basename(os.path.normpath(data_dir)) if data_dir else ""


def scalar_metrics(values: Mapping[str, Any]) -> Dict[str, float]:
  """The numeric top-level entries of a split's metrics, and each intent's numeric metrics
  (eval_results.json's "per_intent") as "per_intent.<intent>.<metric>"; per-slot tables,
  confusion matrices etc. are left out."""
  metrics = {name: float(value) for name, value in values.items() if _is_number(value)}
  per_intent = values.get("per_intent")
  if isinstance(per_intent, Mapping):
    for intent, row in per_intent.items():
      if isinstance(row, Mapping):
        metrics.update({f"{PER_INTENT_PREFIX}{intent}.{name}": float(value)
                        for name, value in row.items() if _is_number(value)})
  return metrics


PER_INTENT_PREFIX = "per_intent."


def _is_number(value: Any) -> bool:
  return isinstance(value, numbers.Number) and not isinstance(value, bool)


def read_evaluations(eval_dir: str) -> List[Dict[str, float]]:
  """[{"step": step, metric: value, ...}] of every dev evaluation in `eval_dir`'s event files."""
  if not os.path.isdir(eval_dir):
    return []
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  accumulator = event_accumulator.EventAccumulator(
      eval_dir, size_guidance={event_accumulator.SCALARS: 0})
  accumulator.Reload()
  by_step: Dict[int, Dict[str, float]] = {}
  for tag in accumulator.Tags()[event_accumulator.SCALARS]:
    for event in accumulator.Scalars(tag):
      by_step.setdefault(int(event.step), {"step": int(event.step)})[tag] = float(event.value)
  return [by_step[step] for step in sorted(by_step)]


def save_results(results: Mapping[str, Any], path: str) -> None:
  io_utils.atomic_write_json(path, results)


def load_results(path: str) -> Dict[str, Any]:
  try:
    results = io_utils.read_json(path)
  except (OSError, ValueError) as e:
    raise InputError(path, f"cannot read sweep results: {e}") from None
  if not isinstance(results, dict) or "runs" not in results:
    raise InputError(path, "not a sweep results file (no \"runs\")")
  return results


def parse_value(text: str) -> Any:
  """A grid value as written -> int, float or the string itself ("1e-4" -> 0.0001)."""
  for kind in (int, float):
    try:
      return kind(text)
    except ValueError:
      pass
  return text


def to_dataframe(results: Mapping[str, Any], split: str = "dev"):
  """One row per run x dev evaluation.

  Columns: RUN_COLUMNS (speed and size None where not collected); one per grid flag (typed, named after the flag; a grid flag that is also
  a RUN_COLUMN keeps one column); "step", "examples_seen" (= step x train_batch_size), one per
  evaluated metric (the eval_dev curves), and "final_<metric>" for the best checkpoint's metrics
  on `split`; "selection" and "final_selection" hold the run's own selection metric (GLUE tasks
  select by different metrics). A run without evaluation events has one row with step NaN.
  """
  import pandas as pd  # pylint: disable=g-import-not-at-top
  rows = []
  for run in results["runs"]:
    base = {
        "sweep": results["sweep"], "run": run["name"], "hash": run["hash"],
        "variant": run["variant"], "instance": run["instance"], "seed": run["seed"],
        "train_batch_size": run["train_batch_size"], "learning_rate": run["learning_rate"],
        "num_train_epochs": run["num_train_epochs"], "task": run["task"],
        "selected_by": run["selected_by"], "best_step": run["best_step"],
        "train_minutes": _minutes(run.get("train_seconds")),
    }
    for key in SPEED_AND_SIZE:
      base[key] = run.get(key)
    for flag, value in run["grid"].items():
      base.setdefault(flag, parse_value(value))
    for name, value in run["final"].get(split, {}).items():
      base[f"final_{name}"] = value
    base[f"final_{SELECTION_COLUMN}"] = run["final"].get(split, {}).get(run["selected_by"])
    for evaluation in run["evaluations"] or [{"step": float("nan")}]:
      row = dict(base, **evaluation)
      row[SELECTION_COLUMN] = evaluation.get(run["selected_by"])
      row["examples_seen"] = row["step"] * run["train_batch_size"]
      rows.append(row)
  return pd.DataFrame(rows)


def _minutes(seconds: Optional[float]) -> Optional[float]:
  return None if seconds is None else seconds / 60.0


def default_results_path(sweep_name: str, results_dir: str = "bench/results/sweeps") -> str:
  return os.path.join(results_dir, f"{sweep_name}.json")
