"""Sequential fine-tuning: start from a fine-tuned run, its heads remapped by LABEL NAME.

`--init_checkpoint=<run directory>` names an earlier run of this package; its best checkpoint
(best_checkpoint/, by dev whole-frame accuracy) and its label_maps.json are read.
`write_remapped_checkpoint` writes a warm-start checkpoint for the new run's labels:
  - every encoder variable (bert/...) as it is;
  - the head variables indexed by a label (the intent head's columns and bias, the slot head's
    columns and bias, the CRF transition matrix's rows AND columns; with --slot_head=bio_type the
    type layer's columns and bias by slot type, while its position layer, always O/B/I, loads as
    it is): the entries of labels both
    runs have are copied, labels new to this run get fresh values (a kernel's columns drawn like
    the head's initializer, truncated normal with stddev initializer_range; biases and CRF
    transitions 0, as their initializers), labels the new run no longer has are dropped;
  - nothing of the optimizer (Adam slots, global step, loss scale).
With --keep_init_labels (`kept_label_maps`) the new run's labels are the earlier run's followed
by those of its own training split that are new, so nothing is dropped: a run trained on one new
intent alone still predicts, and is evaluated on, the intents it started with.
If the earlier run kept a moving average of its weights (--weight_average_decay), the averages
are what it evaluated and selected, so they are the values taken. The new run's model_fn then
warm-starts from this checkpoint like from a pretrained one.
"""

import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from bert_nlu import hooks, io_utils
from bert_nlu.compat import tf
from bert_nlu.data.labels import LabelMaps
from bert_nlu.errors import InputError

WARM_START_DIR = "warm_start"
RECORD_FILE = "warm_start.json"
LABEL_MAPS_FILE = "label_maps.json"
MODEL_SCOPES = ("bert/", "intent_head/", "slot_head/")
AVERAGE_SUFFIX = "/ExponentialMovingAverage"
_OPTIMIZER_PARTS = ("/adam_m", "/adam_v", AVERAGE_SUFFIX)

# Head variable -> (which labels index it, the axes they index).
LABEL_AXES: Mapping[str, Tuple[str, Tuple[int, ...]]] = {
    "intent_head/dense/kernel": ("intents", (1,)),
    "intent_head/dense/bias": ("intents", (0,)),
    "slot_head/dense/kernel": ("slot_tags", (1,)),
    "slot_head/dense/bias": ("slot_tags", (0,)),
    "slot_head/crf_transitions": ("slot_tags", (0, 1)),
    "slot_head/type_dense/kernel": ("slot_types", (1,)),
    "slot_head/type_dense/bias": ("slot_types", (0,)),
}


def best_checkpoint_of_run(run_dir: str) -> Optional[str]:
  """The best checkpoint prefix of a fine-tuned run directory, None if it has none."""
  best = hooks.read_best(run_dir)
  return best["checkpoint"] if best else None


def run_label_maps(run_dir: str) -> LabelMaps:
  """The label maps a fine-tuned run directory trained with (its label_maps.json).

  Raises:
    InputError: the directory has no label_maps.json (not a fine-tuned run of this package).
  """
  labels_path = os.path.join(run_dir, LABEL_MAPS_FILE)
  if not os.path.exists(labels_path):
    raise InputError(labels_path, "--init_checkpoint names a run directory without "
                     "label_maps.json: not a fine-tuned run of this package")
  return LabelMaps.load(labels_path)


def kept_label_maps(run_dir: str, train_label_maps: LabelMaps) -> LabelMaps:
  """--keep_init_labels: the labels of the run in `run_dir` (in their order), then the labels of
  this run's training split that it lacks. Nothing of the earlier run is dropped, so its head rows
  are all copied and its intents and slots are still predicted and evaluated.

  Raises:
    InputError: no label_maps.json in `run_dir`, or it disagrees with this run on multilabel.
  """
  old = run_label_maps(run_dir)
  try:
    return old.extended_by(train_label_maps)
  except ValueError as e:
    raise InputError(os.path.join(run_dir, LABEL_MAPS_FILE),
                     f"--keep_init_labels: {e} (--multi_intent_policy differs)") from None


def is_model_variable(name: str) -> bool:
  return name.startswith(MODEL_SCOPES) and not any(part in name for part in _OPTIMIZER_PARTS)


def remap_label_axes(values: np.ndarray, fresh: np.ndarray, old_labels: Sequence[str],
                     new_labels: Sequence[str], axes: Sequence[int]) -> np.ndarray:
  """Re-indexes `values` along `axes` from old_labels to new_labels by name.

  Args:
    values: the old tensor, len(old_labels) long on each of `axes`.
    fresh: a tensor of the new shape (len(new_labels) on each of `axes`) supplying every entry
      that involves a new label.
    old_labels, new_labels: the label names of the two runs, in id order.
    axes: the axes indexed by labels.

  Returns:
    The new tensor: entries whose labels (on every axis in `axes`) exist in both runs are copied
    from `values`; the rest come from `fresh`.
  """
  old_index = {label: i for i, label in enumerate(old_labels)}
  new_positions = [i for i, label in enumerate(new_labels) if label in old_index]
  old_positions = [old_index[new_labels[i]] for i in new_positions]
  result = np.array(fresh, copy=True)
  target = [slice(None)] * values.ndim
  source = [slice(None)] * values.ndim
  for axis in axes:
    shape = [1] * values.ndim
    shape[axis] = len(new_positions)
    target[axis] = np.asarray(new_positions, np.int64).reshape(shape)
    source[axis] = np.asarray(old_positions, np.int64).reshape(shape)
  if new_positions:
    result[tuple(target)] = values[tuple(source)]
  return result


def _fresh_values(name: str, shape: Sequence[int], initializer_range: float,
                  rng: np.random.RandomState) -> np.ndarray:
  """New entries as the heads' initializers make them: kernels truncated normal, else 0."""
  if not name.endswith("/kernel"):
    return np.zeros(shape, np.float32)
  values = rng.normal(0.0, initializer_range, size=shape)
  outside = np.abs(values) > 2 * initializer_range
  while outside.any():  # truncated: redraw beyond 2 standard deviations
    values[outside] = rng.normal(0.0, initializer_range, size=int(outside.sum()))
    outside = np.abs(values) > 2 * initializer_range
  return values.astype(np.float32)


def _label_changes(old: Sequence[str], new: Sequence[str]) -> Dict[str, List[str]]:
  return {"copied": [label for label in new if label in set(old)],
          "new": [label for label in new if label not in set(old)],
          "dropped": [label for label in old if label not in set(new)]}


def save_checkpoint(values: Mapping[str, np.ndarray], prefix: str) -> None:
  """Writes {name: array} as a TF1 name-based checkpoint at `prefix`."""
  os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
  with tf.Graph().as_default():
    variables = {name: tf.get_variable(name, shape=value.shape, dtype=tf.as_dtype(value.dtype),
                                       initializer=tf.zeros_initializer())
                 for name, value in values.items()}
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      for name, variable in variables.items():
        variable.load(values[name], session)
      tf.train.Saver(variables, sharded=False).save(session, prefix, write_meta_graph=False,
                                                    write_state=False)


def write_remapped_checkpoint(run_dir: str, checkpoint: str, new_label_maps: LabelMaps,
                              output_dir: str, initializer_range: float, seed: int) -> Dict:
  """Writes <output_dir>/warm_start/model.ckpt remapped to new_label_maps (module docstring).

  Args:
    run_dir: the earlier run's directory (for its label_maps.json).
    checkpoint: its checkpoint prefix to start from (its best).
    new_label_maps: this run's labels.
    output_dir: this run's directory.
    initializer_range: stddev of fresh kernel columns.
    seed: seeds the fresh values.

  Returns:
    The record of what was loaded (also written to warm_start/warm_start.json):
    {"source_run_dir", "source_checkpoint", "checkpoint" (the written prefix),
     "moving_averages", "intents"/"slot_tags": {"copied", "new", "dropped"}, "variables"}.
  """
  labels_path = os.path.join(run_dir, LABEL_MAPS_FILE)
  old_label_maps = run_label_maps(run_dir)
  reader = tf.train.load_checkpoint(checkpoint)
  names = reader.get_variable_to_shape_map()
  averaged = any(name.endswith(AVERAGE_SUFFIX) for name in names)
  rng = np.random.RandomState(seed)
  values = {}
  for name in sorted(n for n in names if is_model_variable(n)):
    value = reader.get_tensor(name + AVERAGE_SUFFIX if name + AVERAGE_SUFFIX in names else name)
    if name in LABEL_AXES:
      kind, axes = LABEL_AXES[name]
      old, new = getattr(old_label_maps, kind), getattr(new_label_maps, kind)
      if any(value.shape[axis] != len(old) for axis in axes):
        raise InputError(checkpoint, f"{name} has shape {list(value.shape)}, which does not "
                         f"match the {len(old)} {kind} of {labels_path}")
      shape = list(value.shape)
      for axis in axes:
        shape[axis] = len(new)
      value = remap_label_axes(value, _fresh_values(name, shape, initializer_range, rng),
                               old, new, axes)
    values[name] = value
  prefix = os.path.join(output_dir, WARM_START_DIR, "model.ckpt")
  save_checkpoint(values, prefix)
  record = {
      "source_run_dir": run_dir, "source_checkpoint": checkpoint, "checkpoint": prefix,
      "moving_averages": averaged,
      "intents": _label_changes(old_label_maps.intents, new_label_maps.intents),
      "slot_tags": _label_changes(old_label_maps.slot_tags, new_label_maps.slot_tags),
      "variables": len(values),
      "remapped_variables": sorted(name for name in values if name in LABEL_AXES),
  }
  io_utils.atomic_write_json(os.path.join(output_dir, WARM_START_DIR, RECORD_FILE), record)
  return record
