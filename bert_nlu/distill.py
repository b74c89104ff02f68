"""Distillation of a seed ensemble into one model of the same size.

  python run_bert_nlu.py --flagfile=configs/snips.cfg --output_dir=runs/snips_distilled \
      --distill_teachers=runs/s42,runs/s43,runs/s44 --distill_temperature=2 --distill_alpha=0.5

Teacher targets: the teachers' best exports predict every TRAINING example once, as an ensemble
(`bert_nlu.ensemble`: averaged intent distribution, averaged per-word slot distribution at each
word's first piece). They are cached next to the TFRecords (`teacher.<key>.npz`, the key covers
the teachers' exports, the examples and max_seq_length) and joined to each training batch by
example_index, so they are computed once per teacher set, not per run or epoch.

Loss, per head (intent over examples, slots over the words' first pieces with a known tag):
  (1 - alpha) * cross_entropy(gold, softmax(z)) + alpha * T^2 * cross_entropy(p_T, softmax(z / T))
where p_T is the teacher distribution sharpened or softened by the temperature,
p_T ∝ p^(1/T) (for one softmax teacher that is exactly softmax(teacher_logits / T)), and T^2 keeps
the soft term's gradient on the scale of the hard one (Hinton et al., 2015). alpha = 0 is plain
cross-entropy. With --slot_crf the hard slot term stays the CRF likelihood and the soft term
applies to the per-word softmax of the CRF's emission scores.
"""

import os
from typing import Dict, Optional, Sequence

import numpy as np

from bert_nlu import io_utils
from bert_nlu.compat import tf

TEACHER_INTENT = "teacher_intent_probabilities"  # [batch, num_intents]
TEACHER_SLOTS = "teacher_slot_probabilities"  # [batch, words, num_tags]


def soften(probabilities: np.ndarray, temperature: float) -> np.ndarray:
  """p^(1/T), renormalised over the last axis (rows of zeros stay zeros)."""
  powered = np.power(np.maximum(probabilities, 1e-30), 1.0 / temperature)
  powered = np.where(probabilities > 0, powered, 0.0)
  total = powered.sum(axis=-1, keepdims=True)
  return np.where(total > 0, powered / np.maximum(total, 1e-30), 0.0).astype(np.float32)


def mixed_cross_entropy(logits: tf.Tensor, gold_ids: tf.Tensor, teacher_probabilities: tf.Tensor,
                        weights: tf.Tensor, temperature: float, alpha: float) -> tf.Tensor:
  """Weighted mean of (1 - alpha) * hard + alpha * T^2 * soft cross-entropy.

  Args:
    logits: [..., num_classes] student scores.
    gold_ids: [...] int gold class (ids < 0 have weight 0 for the hard term via `weights`).
    teacher_probabilities: [..., num_classes] teacher distribution (already at temperature T).
    weights: [...] float, 0 excludes a position from both terms.
    temperature: T > 0.
    alpha: weight of the soft term in [0, 1].
  Returns:
    scalar float32.
  """
  hard = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.maximum(gold_ids, 0),
                                                        logits=logits)
  soft = tf.nn.softmax_cross_entropy_with_logits(labels=tf.stop_gradient(teacher_probabilities),
                                                 logits=logits / temperature)
  per_position = (1.0 - alpha) * hard + alpha * temperature ** 2 * soft
  return tf.reduce_sum(per_position * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def teacher_cache_key(teacher_exports: Sequence[str], examples, max_seq_length: int,
                      temperature: float) -> str:
  """Fingerprint of what the cached targets depend on."""
  export_files = []
  for export_dir in teacher_exports:
    export_files.append(os.path.join(export_dir, "saved_model.pb"))
    export_files.append(os.path.join(export_dir, "variables", "variables.index"))
  return io_utils.fingerprint_json({
      "teachers": io_utils.fingerprint_files(export_files),
      "examples": io_utils.fingerprint_json([[list(e.words), e.intent] for e in examples]),
      "max_seq_length": max_seq_length,
      "temperature": temperature,
  })


def compute_teacher_targets(predictor, examples, temperature: float,
                            batch_size: int = 64) -> Dict[str, np.ndarray]:
  """Runs `predictor` (an NluPredictor or EnsemblePredictor) over `examples`.

  Returns:
    intent: [num_examples, num_intents] float32 at temperature T.
    slots: [num_examples, max_words, num_tags] float32 at temperature T, per word (the first
      piece's distribution); rows past an example's kept words are zero.
  """
  intent_rows, slot_rows = [], []
  for start in range(0, len(examples), batch_size):
    words_list = [list(e.words) for e in examples[start:start + batch_size]]
    outputs, first_piece_mask, _ = predictor.run_batch(words_list)
    if "slot_probabilities" not in outputs:
      raise ValueError("a teacher's export has no slot_probabilities output (exported before "
                       "distillation existed): retrain or re-export it")
    for row in range(len(words_list)):
      intent_rows.append(outputs["intent_probabilities"][row])
      positions = np.flatnonzero(first_piece_mask[row])
      slot_rows.append(outputs["slot_probabilities"][row][positions])
  max_words = max(len(rows) for rows in slot_rows)
  num_tags = slot_rows[0].shape[-1]
  slots = np.zeros([len(slot_rows), max_words, num_tags], np.float32)
  for index, rows in enumerate(slot_rows):
    slots[index, :len(rows)] = rows
  return {"intent": soften(np.stack(intent_rows), temperature),
          "slots": soften(slots, temperature)}


def load_or_compute_teacher_targets(teacher_run_dirs: Sequence[str], examples, label_maps,
                                    max_seq_length: int, temperature: float,
                                    cache_dir: str) -> Dict[str, np.ndarray]:
  """Cached teacher targets of `examples` (see module docstring)."""
  from bert_nlu import ensemble, hooks, predict  # pylint: disable=g-import-not-at-top
  exports = [hooks.latest_export(run_dir) for run_dir in teacher_run_dirs]
  key = teacher_cache_key(exports, examples, max_seq_length, temperature)
  path = os.path.join(cache_dir, f"teacher.{key[:16]}.npz")
  if os.path.isfile(path):
    with np.load(path) as cached:
      tf.logging.info("Distillation: teacher targets reused from %s", path)
      return {"intent": cached["intent"], "slots": cached["slots"]}
  teacher = ensemble.EnsemblePredictor([predict.NluPredictor(d) for d in exports])
  if teacher.label_maps != label_maps:
    raise ValueError("distillation teachers were trained with other label maps than this run "
                     f"({', '.join(teacher_run_dirs)})")
  if teacher.max_seq_length != max_seq_length:
    raise ValueError(f"distillation teachers use max_seq_length {teacher.max_seq_length}, "
                     f"this run {max_seq_length}")
  tf.logging.info("Distillation: predicting %d training examples with %d teacher(s)",
                  len(examples), len(exports))
  targets = compute_teacher_targets(teacher, examples, temperature)
  os.makedirs(cache_dir, exist_ok=True)
  temporary = path + ".tmp.npz"
  np.savez(temporary, **targets)
  os.replace(temporary, path)
  return targets


def with_teacher_targets(input_fn, targets: Optional[Dict[str, np.ndarray]]):
  """Wraps a training input_fn: each batch gains TEACHER_INTENT and TEACHER_SLOTS by
  example_index (slots cut to the batch's longest word count)."""
  if targets is None:
    return input_fn
  intent_table, slot_table = targets["intent"], targets["slots"]

  def lookup(example_index, first_piece_mask):
    max_words = int(first_piece_mask.sum(axis=1).max()) if len(first_piece_mask) else 0
    return (intent_table[example_index],
            slot_table[example_index][:, :max_words])

  def attach(features):
    intent, slots = tf.numpy_function(
        lookup, [features["example_index"], features["first_piece_mask"]],
        [tf.float32, tf.float32], stateful=False)
    intent.set_shape([None, intent_table.shape[1]])
    slots.set_shape([None, None, slot_table.shape[2]])
    return dict(features, **{TEACHER_INTENT: intent, TEACHER_SLOTS: slots})

  def wrapped_input_fn(params=None):
    return input_fn(params).map(attach)

  return wrapped_input_fn
