"""Multi-label intents: from one sigmoid probability per atomic intent to a predicted SET.

Decision rule (the same in evaluation, the export's predictor and the tests): every intent whose
probability is >= the threshold, and if none is, the single most probable intent, so that at
least one intent is always predicted.

The threshold is chosen on dev (`choose_threshold`): the value that maximises set accuracy (the
predicted set equals the gold set), searched over the midpoints between consecutive distinct dev
probabilities; ties go to the candidate nearest 0.5. Done once over the whole dev set.
"""

from typing import Optional, Sequence

import numpy as np

DEFAULT_THRESHOLD = 0.5
_MAX_CANDIDATES = 2000


def decide_intent_sets(probabilities: np.ndarray, threshold: float) -> np.ndarray:
  """The predicted intent sets.

  Args:
    probabilities: [num_examples, num_intents] sigmoid probabilities.
    threshold: decision threshold.

  Returns:
    [num_examples, num_intents] bool: intent j is in example i's set; every row has >= 1 True.
  """
  probabilities = np.asarray(probabilities)
  chosen = probabilities >= threshold  # [n, k]
  top = np.argmax(probabilities, axis=1)  # [n]
  empty = ~chosen.any(axis=1)  # [n]
  chosen[np.flatnonzero(empty), top[empty]] = True
  return chosen


def set_accuracy(chosen: np.ndarray, gold_multi_hot: np.ndarray,
                 gold_representable: Optional[np.ndarray] = None) -> float:
  """Fraction of rows whose predicted set equals the gold set.

  Args:
    chosen: [n, k] bool predicted sets.
    gold_multi_hot: [n, k] 0/1 gold sets over the known intents.
    gold_representable: [n] bool, False where the gold set holds an intent unseen in training
      (such a row is always wrong); None = all True.
  """
  correct = np.all(chosen == np.asarray(gold_multi_hot, bool), axis=1)
  if gold_representable is not None:
    correct &= np.asarray(gold_representable, bool)
  return float(np.mean(correct))


def threshold_candidates(probabilities: np.ndarray) -> np.ndarray:
  """Midpoints between consecutive distinct probabilities, plus one below and one above all.

  More than `_MAX_CANDIDATES` distinct values are thinned to evenly spaced quantiles first.
  """
  values = np.unique(np.asarray(probabilities, np.float64))
  if len(values) > _MAX_CANDIDATES:
    values = np.unique(np.quantile(values, np.linspace(0.0, 1.0, _MAX_CANDIDATES)))
  midpoints = (values[1:] + values[:-1]) / 2.0
  return np.concatenate([[values[0] / 2.0], midpoints, [(values[-1] + 1.0) / 2.0]])


def choose_threshold(probabilities: np.ndarray, gold_multi_hot: np.ndarray,
                     gold_representable: Optional[np.ndarray] = None) -> float:
  """The threshold with the best set accuracy on this (dev) set; ties -> nearest 0.5.

  Args:
    probabilities: [n, k] sigmoid probabilities of the dev set.
    gold_multi_hot: [n, k] gold sets.
    gold_representable: see `set_accuracy`.

  Returns:
    The threshold (a Python float in (0, 1)).
  """
  candidates = threshold_candidates(probabilities)
  accuracies = np.array([
      set_accuracy(decide_intent_sets(probabilities, t), gold_multi_hot, gold_representable)
      for t in candidates])
  best = np.flatnonzero(accuracies == accuracies.max())
  return float(candidates[best[np.argmin(np.abs(candidates[best] - DEFAULT_THRESHOLD))]])


def multi_hot(id_sets: Sequence[Sequence[int]], num_intents: int) -> np.ndarray:
  """[n, num_intents] 0/1 from lists of ids; negative ids (unknown intents) are skipped."""
  result = np.zeros([len(id_sets), num_intents], np.int32)
  for row, ids in enumerate(id_sets):
    for intent_id in ids:
      if intent_id >= 0:
        result[row, intent_id] = 1
  return result
