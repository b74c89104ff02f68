"""TensorBoard HParams summaries of a finished run: its hyper-parameters and final metrics.

`write_hparams_summary(output_dir, config_dict, results)` appends one event file to the run
directory with the HParams plugin's session summary (every scalar configuration field) and the
final metrics of the best checkpoint as scalars `final/<split>/<metric>`. TensorBoard pointed at a
directory of runs (e.g. a sweep's directory of named symlinks) then lists every run in the HParams
dashboard, with the final metrics and the dev curves (`eval_dev/...`) as its metric columns.

Written with TensorBoard's own event writer and protos: no TensorFlow graph or eager context is
involved, so it works from the graph-mode trainer.
"""

import numbers
import os
import time
from typing import Any, Dict, Mapping

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import summary_v2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from bert_nlu import run_dir, run_identity

FINAL_TAG_PREFIX = "final"
HPARAMS_FILE_SUFFIX = ".hparams"


def hparams_of_config(config_dict: Mapping[str, Any]) -> Dict[str, Any]:
  """{dotted config key: bool/number/str} of every scalar configuration field.

  Paths and execution settings are left out (bert_nlu.run_identity: where a run writes, its
  threads, file paths), except the data directory, shown by its base name ("data_dir"). None
  fields (unset options) are left out; list values become strings.
  """
  flat = run_dir.flatten(dict(config_dict))
  hparams = {}
  for key, value in sorted(flat.items()):
    if key in run_identity.EXECUTION_KEYS or key in run_identity.PATH_KEYS or value is None:
      continue
    hparams[key] = value if isinstance(value, (bool, numbers.Number, str)) else str(value)
  data_dir = flat.get("data.data_dir")
  if data_dir:
    hparams["data_dir"] = os.path.basename(os.path.normpath(data_dir))
  return hparams


def final_metrics(results: Mapping[str, Any]) -> Dict[str, float]:
  """{"final/<split>/<metric>": value} of the numeric top-level metrics of each evaluated split."""
  metrics = {}
  for split, split_metrics in sorted(results.get("splits", {}).items()):
    for name, value in sorted(split_metrics.items()):
      if isinstance(value, numbers.Number) and not isinstance(value, bool):
        metrics[f"{FINAL_TAG_PREFIX}/{split}/{name}"] = float(value)
  return metrics


def write_hparams_summary(output_dir: str, config_dict: Mapping[str, Any],
                          results: Mapping[str, Any]) -> str:
  """Writes the run's HParams session summary and final metrics; returns the event file path.

  Args:
    output_dir: the run directory (the HParams session is this directory).
    config_dict: RunConfig.to_json_dict().
    results: the content of eval_results.json ("splits": {split: {metric: value}}, "best_step").
  """
  step = int(results.get("best_step") or 0)
  writer = EventFileWriter(output_dir, filename_suffix=HPARAMS_FILE_SUFFIX)
  try:
    now = time.time()
    hparams_summary = summary_v2.hparams_pb(hparams_of_config(config_dict),
                                            start_time_secs=int(now))
    writer.add_event(event_pb2.Event(wall_time=now, step=step, summary=hparams_summary))
    values = [summary_pb2.Summary.Value(tag=tag, simple_value=value)
              for tag, value in final_metrics(results).items()]
    writer.add_event(event_pb2.Event(wall_time=now, step=step,
                                     summary=summary_pb2.Summary(value=values)))
  finally:
    writer.close()
  return _newest_hparams_file(output_dir)


def _newest_hparams_file(output_dir: str) -> str:
  files = [os.path.join(output_dir, name) for name in os.listdir(output_dir)
           if name.startswith("events.out.tfevents.") and name.endswith(HPARAMS_FILE_SUFFIX)]
  return max(files, key=os.path.getmtime)
