"""Whole-set evaluation metrics: word level for joint intent + slot filling, and GLUE's.

All metrics are computed ONCE over a whole evaluation set from its predictions; nothing here is
computed per batch and averaged (averaging per-batch F1 gives a different, wrong number because
F1 is not a mean over examples).

Inputs are plain Python strings: the caller has already mapped ids back to words, intent names
and BIO tags (one tag per WORD, not per WordPiece). A gold label that the model never saw in
training simply never equals a prediction, so it counts as an error and needs no special case.

Conventions:
  * Slot precision / recall / F1 are entity level, CoNLL style, computed with seqeval in its
    default (non-strict) mode, which reproduces conlleval: an "I-x" tag that does not continue an
    "x" entity (it follows "O" or another type) starts a new entity.
  * When there are no gold entities AND no predicted entities at all, slot precision, recall and
    F1 are defined as 1.0 (nothing to find, nothing wrongly found). seqeval would return 0.0 with
    a warning. When only one side is empty, the empty ratio is 0.0 (zero_division=0).
  * Token F1 (micro / macro / weighted) is scikit-learn's `f1_score` over all words flattened,
    restricted to the tags other than "O" that occur in gold or predictions, so that the huge
    majority class "O" does not inflate the scores. If no such tag exists the scores are 1.0.

GLUE (`classification_metrics`, `regression_metrics`): accuracy; F1 of the positive class
(scikit-learn, 0 when undefined); Matthews correlation (scikit-learn, 0 when undefined, e.g. a
constant prediction); Pearson and Spearman correlation (scipy), defined as 0.0 when either side is
constant (scipy would return NaN, which no checkpoint comparison can use).
"""

import collections
import re
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats
from seqeval.metrics import classification_report as seqeval_classification_report
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.metrics.sequence_labeling import precision_recall_fscore_support as seqeval_prfs
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix
from sklearn.metrics import f1_score as sklearn_f1_score
from sklearn.metrics import matthews_corrcoef as sklearn_matthews_corrcoef

OUTSIDE_TAG = "O"
INTENT_SEPARATOR = "#"
_BIO_TAG_PATTERN = re.compile(r"O|[BI]-.+", re.DOTALL)
_SEQEVAL_AVERAGE_ROWS = ("micro avg", "macro avg", "weighted avg")


def nlu_metrics(gold_intents: Sequence[str], gold_tags: Sequence[Sequence[str]],
                pred_intents: Sequence[str], pred_tags: Sequence[Sequence[str]]) -> dict:
  """Computes every intent, slot and whole-frame metric over a whole evaluation set.

  Args:
    gold_intents: gold intent per example.
    gold_tags: gold BIO tag per word, one sequence per example.
    pred_intents: predicted intent per example.
    pred_tags: predicted BIO tag per word, one sequence per example; each must have the same
      length as the matching gold sequence.

  Returns:
    A JSON-serialisable dict (Python ints and floats; rates are fractions in [0, 1]) with keys
    "num_examples", "num_words", "intent_accuracy", "slot_precision", "slot_recall", "slot_f1",
    "token_f1_micro", "token_f1_macro", "token_f1_weighted", "whole_frame_accuracy",
    "per_intent" (gold intent -> {"count", "intent_accuracy", "slot_precision", "slot_recall",
    "slot_f1", "token_f1_micro", "token_f1_macro", "token_f1_weighted", "whole_frame_accuracy"},
    sorted by intent) and "per_slot" (slot type ->
    {"precision", "recall", "f1", "support"}, sorted by slot type).

  Raises:
    ValueError: if the input is empty, the four sequences differ in length, or an example's
      predicted tags differ in length from its gold tags.
  """
  gold_tag_lists, pred_tag_lists = validate_nlu_inputs(
      gold_intents, gold_tags, pred_intents, pred_tags)
  gold_intents = list(gold_intents)
  pred_intents = list(pred_intents)
  slot_precision, slot_recall, slot_f1 = slot_precision_recall_f1(gold_tag_lists, pred_tag_lists)
  token_f1 = token_f1_scores(gold_tag_lists, pred_tag_lists)
  return {
      "num_examples": len(gold_intents),
      "num_words": sum(len(tags) for tags in gold_tag_lists),
      "intent_accuracy": intent_accuracy(gold_intents, pred_intents),
      "slot_precision": slot_precision,
      "slot_recall": slot_recall,
      "slot_f1": slot_f1,
      "token_f1_micro": token_f1["micro"],
      "token_f1_macro": token_f1["macro"],
      "token_f1_weighted": token_f1["weighted"],
      "whole_frame_accuracy": whole_frame_accuracy(
          gold_intents, gold_tag_lists, pred_intents, pred_tag_lists),
      "per_intent": per_intent_metrics(gold_intents, gold_tag_lists, pred_intents, pred_tag_lists),
      "per_slot": per_slot_metrics(gold_tag_lists, pred_tag_lists),
  }


def validate_nlu_inputs(gold_intents: Sequence[str], gold_tags: Sequence[Sequence[str]],
                        pred_intents: Sequence[str], pred_tags: Sequence[Sequence[str]]
                        ) -> Tuple[List[List[str]], List[List[str]]]:
  """Checks the shapes of an evaluation set and returns the tags as lists of lists.

  seqeval only recognises nested `list`s (not tuples), hence the conversion.

  Args:
    gold_intents: gold intent per example.
    gold_tags: gold tag sequence per example.
    pred_intents: predicted intent per example.
    pred_tags: predicted tag sequence per example.

  Returns:
    (gold_tag_lists, pred_tag_lists): the tag sequences as fresh lists of lists of str.

  Raises:
    ValueError: on empty input, differing example counts, a tag sequence given as a single
      string, or an example whose predicted and gold tag counts differ (the message names the
      example index and both lengths).
  """
  counts = {"gold_intents": len(gold_intents), "gold_tags": len(gold_tags),
            "pred_intents": len(pred_intents), "pred_tags": len(pred_tags)}
  if len(set(counts.values())) != 1:
    raise ValueError(f"Inputs disagree on the number of examples: {counts}")
  if counts["gold_intents"] == 0:
    raise ValueError("Cannot compute metrics over an empty evaluation set.")
  for index, (gold, pred) in enumerate(zip(gold_tags, pred_tags)):
    if isinstance(gold, str) or isinstance(pred, str):
      raise ValueError(
          f"Example {index}: tags must be a sequence of tags (one per word), not a string.")
    if len(gold) != len(pred):
      raise ValueError(
          f"Example {index}: predicted tags have length {len(pred)} but gold tags have "
          f"length {len(gold)}.")
  return [list(tags) for tags in gold_tags], [list(tags) for tags in pred_tags]


def intent_accuracy(gold_intents: Sequence[str], pred_intents: Sequence[str]) -> float:
  """Returns the fraction of examples whose predicted intent equals the gold intent.

  Args:
    gold_intents: gold intent per example (non-empty).
    pred_intents: predicted intent per example, same length.

  Returns:
    The accuracy as a Python float in [0, 1].
  """
  num_correct = sum(gold == pred for gold, pred in zip(gold_intents, pred_intents))
  return num_correct / len(gold_intents)


def whole_frame_accuracy(gold_intents: Sequence[str], gold_tags: Sequence[Sequence[str]],
                         pred_intents: Sequence[str], pred_tags: Sequence[Sequence[str]]
                         ) -> float:
  """Returns the fraction of examples whose intent AND every word's tag are right.

  Args:
    gold_intents: gold intent per example (non-empty).
    gold_tags: gold tag sequence per example.
    pred_intents: predicted intent per example.
    pred_tags: predicted tag sequence per example, each as long as its gold sequence.

  Returns:
    The accuracy as a Python float in [0, 1].
  """
  num_correct = sum(
      gold_intent == pred_intent and list(gold) == list(pred)
      for gold_intent, gold, pred_intent, pred in zip(
          gold_intents, gold_tags, pred_intents, pred_tags))
  return num_correct / len(gold_intents)


def count_entities(tag_lists: List[List[str]]) -> int:
  """Returns the number of BIO entities (conlleval-lenient) in all sequences together."""
  return sum(len(get_entities(tags)) for tags in tag_lists)


def slot_precision_recall_f1(gold_tags: List[List[str]],
                             pred_tags: List[List[str]]) -> Tuple[float, float, float]:
  """Entity-level CoNLL precision, recall and F1 over a whole set (seqeval default mode).

  If there are neither gold nor predicted entities, all three are 1.0 by definition. Otherwise
  a ratio with a zero denominator is 0.0.

  Args:
    gold_tags: gold tags, a list of tag lists.
    pred_tags: predicted tags, same shape.

  Returns:
    (precision, recall, f1) as Python floats in [0, 1].
  """
  if count_entities(gold_tags) == 0 and count_entities(pred_tags) == 0:
    return 1.0, 1.0, 1.0
  precision, recall, f1, _ = seqeval_prfs(gold_tags, pred_tags, average="micro", zero_division=0)
  return float(precision), float(recall), float(f1)


def token_f1_scores(gold_tags: List[List[str]], pred_tags: List[List[str]]) -> Dict[str, float]:
  """Word-level F1 over all words flattened, ignoring the "O" class.

  The labels scored are the sorted tags other than "O" that occur in gold or predictions, so
  the majority class does not inflate the scores ("O" words still count as false positives /
  false negatives of the other tags they are confused with). If there are no such tags all
  scores are 1.0.

  Args:
    gold_tags: gold tags, a list of tag lists.
    pred_tags: predicted tags, same shape.

  Returns:
    {"micro": f1, "macro": f1, "weighted": f1} as Python floats in [0, 1].
  """
  flat_gold = [tag for tags in gold_tags for tag in tags]
  flat_pred = [tag for tags in pred_tags for tag in tags]
  labels = sorted((set(flat_gold) | set(flat_pred)) - {OUTSIDE_TAG})
  if not labels:
    return {"micro": 1.0, "macro": 1.0, "weighted": 1.0}
  return {
      average: float(sklearn_f1_score(
          flat_gold, flat_pred, labels=labels, average=average, zero_division=0))
      for average in ("micro", "macro", "weighted")
  }


def group_indices_by_gold_intent(gold_intents: Sequence[str]) -> Dict[str, List[int]]:
  """Returns {gold intent: [example indices]} with intents sorted and indices ascending."""
  groups = collections.defaultdict(list)
  for index, intent in enumerate(gold_intents):
    groups[intent].append(index)
  return {intent: groups[intent] for intent in sorted(groups)}


def per_intent_metrics(gold_intents: Sequence[str], gold_tags: List[List[str]],
                       pred_intents: Sequence[str], pred_tags: List[List[str]]
                       ) -> Dict[str, dict]:
  """Intent, slot, token and whole-frame metrics over the examples of each GOLD intent.

  Each intent's token F1 scores the tags other than "O" that occur in that intent's gold or
  predicted tags (`token_f1_scores` on its examples alone).

  Args:
    gold_intents: gold intent per example.
    gold_tags: gold tags, a list of tag lists.
    pred_intents: predicted intent per example.
    pred_tags: predicted tags, same shape as `gold_tags`.

  Returns:
    {gold intent: {"count", "intent_accuracy", "slot_precision", "slot_recall", "slot_f1",
    "token_f1_micro", "token_f1_macro", "token_f1_weighted", "whole_frame_accuracy"}}, keys
    sorted.
  """
  result = {}
  for intent, indices in group_indices_by_gold_intent(gold_intents).items():
    group_gold_intents = [gold_intents[i] for i in indices]
    group_pred_intents = [pred_intents[i] for i in indices]
    group_gold_tags = [gold_tags[i] for i in indices]
    group_pred_tags = [pred_tags[i] for i in indices]
    precision, recall, f1 = slot_precision_recall_f1(group_gold_tags, group_pred_tags)
    token_f1 = token_f1_scores(group_gold_tags, group_pred_tags)
    result[intent] = {
        "count": len(indices),
        "intent_accuracy": intent_accuracy(group_gold_intents, group_pred_intents),
        "slot_precision": precision,
        "slot_recall": recall,
        "slot_f1": f1,
        "token_f1_micro": token_f1["micro"],
        "token_f1_macro": token_f1["macro"],
        "token_f1_weighted": token_f1["weighted"],
        "whole_frame_accuracy": whole_frame_accuracy(
            group_gold_intents, group_gold_tags, group_pred_intents, group_pred_tags),
    }
  return result


def per_slot_metrics(gold_tags: List[List[str]], pred_tags: List[List[str]]) -> Dict[str, dict]:
  """Entity-level precision, recall, F1 and gold support per slot type (seqeval report).

  Slot types that only occur in predictions appear with support 0. Empty when there are no
  entities at all.

  Args:
    gold_tags: gold tags, a list of tag lists.
    pred_tags: predicted tags, same shape.

  Returns:
    {slot type: {"precision", "recall", "f1", "support"}}, keys sorted.
  """
  if count_entities(gold_tags) == 0 and count_entities(pred_tags) == 0:
    return {}
  report = seqeval_classification_report(
      gold_tags, pred_tags, output_dict=True, zero_division=0)
  return {
      slot: {
          "precision": float(row["precision"]),
          "recall": float(row["recall"]),
          "f1": float(row["f1-score"]),
          "support": int(row["support"]),
      }
      for slot, row in sorted(report.items()) if slot not in _SEQEVAL_AVERAGE_ROWS
  }


def tags_to_spans(words: Sequence[str], tags: Sequence[str]) -> List[dict]:
  """Turns one utterance's BIO tags into slot spans (conlleval-lenient, like seqeval).

  An "I-x" that follows "O" or a different type starts a new span, exactly as in the metrics.

  Args:
    words: the utterance's words.
    tags: one BIO tag per word.

  Returns:
    Spans in order, each {"slot": type, "text": the words joined by spaces, "start": first word
    index, "end": one past the last word index}.

  Raises:
    ValueError: if `words` and `tags` differ in length, or a tag is not "O", "B-<slot>" or
      "I-<slot>" (seqeval would crash on "" and read "Bogus" as a B tag of slot "ogus").
  """
  if len(words) != len(tags):
    raise ValueError(f"{len(words)} words but {len(tags)} tags: {list(words)} / {list(tags)}")
  for position, tag in enumerate(tags):
    if not (isinstance(tag, str) and _BIO_TAG_PATTERN.fullmatch(tag)):
      raise ValueError(f"tag {position} is {tag!r}; expected 'O', 'B-<slot>' or 'I-<slot>'")
  return [
      {"slot": slot, "text": " ".join(words[start:last + 1]), "start": start, "end": last + 1}
      for slot, start, last in get_entities(list(tags))
  ]


def _canonical_set(label: str) -> Tuple[str, ...]:
  """A "#"-joined intent label as its sorted tuple of distinct atomic intents."""
  return tuple(sorted(set(label.split(INTENT_SEPARATOR))))


def _subset_accuracy(indices: Sequence[int], set_correct: Sequence[bool],
                     frame_correct: Sequence[bool]) -> dict:
  """{"count", "intent_set_accuracy", "whole_frame_accuracy"} over `indices` (None if empty)."""
  count = len(indices)
  return {
      "count": count,
      "intent_set_accuracy": sum(set_correct[i] for i in indices) / count if count else None,
      "whole_frame_accuracy": sum(frame_correct[i] for i in indices) / count if count else None,
  }


def multi_intent_metrics(gold_intents: Sequence[str], gold_tags: Sequence[Sequence[str]],
                         pred_intents: Sequence[str], pred_tags: Sequence[Sequence[str]],
                         train_intents: Iterable[str]) -> dict:
  """Intents as SETS ("a#b" == "b#a" == {a, b}) over a whole evaluation set.

  Args:
    gold_intents, pred_intents: one (possibly "#"-joined) label per example.
    gold_tags, pred_tags: one tag sequence per example (same lengths, see `nlu_metrics`).
    train_intents: the labels of the training set (its combinations are "seen").

  Returns:
    {"intent_set_accuracy": predicted set == gold set,
     "intent_precision_micro", "intent_recall_micro", "intent_f1_micro", "intent_f1_macro":
       over atomic intents (micro: pooled counts; macro: mean F1 over the intents in gold or
       predictions; a zero denominator gives 0),
     "per_intent": {atomic intent: {"precision", "recall", "f1", "support"}},
     "per_combination": {gold set label: {"count", "predicted" (times predicted), "correct",
       "seen_in_train"}},
     "seen_combinations", "unseen_combinations", "multi_intent_utterances" (gold set of >= 2):
       {"count", "intent_set_accuracy", "whole_frame_accuracy"} (accuracies None when count 0)}.
  """
  gold_tag_lists, pred_tag_lists = validate_nlu_inputs(
      gold_intents, gold_tags, pred_intents, pred_tags)
  gold_sets = [_canonical_set(label) for label in gold_intents]
  pred_sets = [_canonical_set(label) for label in pred_intents]
  seen = {_canonical_set(label) for label in train_intents}
  set_correct = [gold == pred for gold, pred in zip(gold_sets, pred_sets)]
  frame_correct = [ok and gold == pred for ok, gold, pred in
                   zip(set_correct, gold_tag_lists, pred_tag_lists)]

  true_positives, false_positives, false_negatives = (
      collections.Counter(), collections.Counter(), collections.Counter())
  for gold, pred in zip(gold_sets, pred_sets):
    true_positives.update(set(gold) & set(pred))
    false_positives.update(set(pred) - set(gold))
    false_negatives.update(set(gold) - set(pred))

  def prf(tp, fp, fn):
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1

  per_intent = {}
  for intent in sorted(set(true_positives) | set(false_positives) | set(false_negatives)):
    precision, recall, f1 = prf(true_positives[intent], false_positives[intent],
                                false_negatives[intent])
    per_intent[intent] = {"precision": precision, "recall": recall, "f1": f1,
                          "support": true_positives[intent] + false_negatives[intent]}
  micro = prf(sum(true_positives.values()), sum(false_positives.values()),
              sum(false_negatives.values()))

  gold_counts = collections.Counter(gold_sets)
  pred_counts = collections.Counter(pred_sets)
  correct_counts = collections.Counter(g for g, ok in zip(gold_sets, set_correct) if ok)
  per_combination = {
      INTENT_SEPARATOR.join(combination): {
          "count": gold_counts[combination], "predicted": pred_counts[combination],
          "correct": correct_counts[combination], "seen_in_train": combination in seen}
      for combination in sorted(set(gold_counts) | set(pred_counts))}
  indices = range(len(gold_sets))
  return {
      "intent_set_accuracy": sum(set_correct) / len(set_correct),
      "intent_precision_micro": micro[0],
      "intent_recall_micro": micro[1],
      "intent_f1_micro": micro[2],
      "intent_f1_macro": (sum(row["f1"] for row in per_intent.values()) / len(per_intent)
                          if per_intent else 0.0),
      "per_intent": per_intent,
      "per_combination": per_combination,
      "seen_combinations": _subset_accuracy(
          [i for i in indices if gold_sets[i] in seen], set_correct, frame_correct),
      "unseen_combinations": _subset_accuracy(
          [i for i in indices if gold_sets[i] not in seen], set_correct, frame_correct),
      "multi_intent_utterances": _subset_accuracy(
          [i for i in indices if len(gold_sets[i]) > 1], set_correct, frame_correct),
  }


def format_percent(fraction: float) -> str:
  """Formats a fraction in [0, 1] as a percentage with 2 decimals, e.g. 0.5 -> "50.00%"."""
  return f"{100.0 * fraction:.2f}%"


_HEADLINE_ROWS = (
    ("intent accuracy", "intent_accuracy"),
    ("slot precision", "slot_precision"),
    ("slot recall", "slot_recall"),
    ("slot F1", "slot_f1"),
    ("token F1 micro (no O)", "token_f1_micro"),
    ("token F1 macro (no O)", "token_f1_macro"),
    ("token F1 weighted (no O)", "token_f1_weighted"),
    ("whole-frame accuracy", "whole_frame_accuracy"),
)


def headline_frame(metrics: dict) -> pd.DataFrame:
  """Returns the headline metrics of `nlu_metrics` as a one-column DataFrame of strings."""
  rows = [("examples", str(metrics["num_examples"])), ("words", str(metrics["num_words"]))]
  rows += [(name, format_percent(metrics[key])) for name, key in _HEADLINE_ROWS]
  return pd.DataFrame({"value": [value for _, value in rows]},
                      index=[name for name, _ in rows])


def per_intent_frame(metrics: dict) -> pd.DataFrame:
  """Returns the per-intent metrics of `nlu_metrics` as a DataFrame of strings."""
  per_intent = metrics["per_intent"]
  return pd.DataFrame(
      {
          "count": [str(row["count"]) for row in per_intent.values()],
          "intent acc": [format_percent(row["intent_accuracy"]) for row in per_intent.values()],
          "slot F1": [format_percent(row["slot_f1"]) for row in per_intent.values()],
          "token F1 micro": [format_percent(row["token_f1_micro"]) for row in per_intent.values()],
          "whole-frame acc": [
              format_percent(row["whole_frame_accuracy"]) for row in per_intent.values()],
      },
      index=list(per_intent))


def format_metrics_table(metrics: dict, title: str = "") -> str:
  """Renders `nlu_metrics` output as a fixed-width text report.

  Args:
    metrics: the dict returned by `nlu_metrics`.
    title: optional first line.

  Returns:
    The headline metrics (percentages with 2 decimals), a blank line, then one row per gold
    intent with count, intent accuracy, slot F1, token F1 micro and whole-frame accuracy.
  """
  parts = [title] if title else []
  parts.append(headline_frame(metrics).to_string())
  parts.append("")
  parts.append("per intent:")
  parts.append(per_intent_frame(metrics).to_string())
  return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------
# GLUE: sentence (pair) classification and regression.


def _check_same_length(gold: Sequence, pred: Sequence) -> None:
  if len(gold) != len(pred):
    raise ValueError(f"{len(gold)} gold values but {len(pred)} predictions")
  if not gold:
    raise ValueError("no examples to score")


def accuracy(gold_labels: Sequence[str], pred_labels: Sequence[str]) -> float:
  """Share of examples whose predicted label equals the gold label."""
  _check_same_length(gold_labels, pred_labels)
  return sum(g == p for g, p in zip(gold_labels, pred_labels)) / len(gold_labels)


def positive_class_f1(gold_labels: Sequence[str], pred_labels: Sequence[str],
                      positive_label: str) -> float:
  """F1 of `positive_label` (GLUE's F1 for MRPC and QQP); 0.0 when undefined."""
  _check_same_length(gold_labels, pred_labels)
  return float(sklearn_f1_score(list(gold_labels), list(pred_labels), pos_label=positive_label,
                                average="binary", zero_division=0))


def matthews_correlation(gold_labels: Sequence[str], pred_labels: Sequence[str]) -> float:
  """Matthews correlation coefficient (GLUE's CoLA metric); 0.0 when undefined."""
  _check_same_length(gold_labels, pred_labels)
  return float(sklearn_matthews_corrcoef(list(gold_labels), list(pred_labels)))


def _correlation(function, gold: np.ndarray, pred: np.ndarray) -> float:
  if np.ptp(gold) == 0 or np.ptp(pred) == 0:
    return 0.0
  return float(function(gold, pred)[0])


def pearson_spearman(gold_scores: Sequence[float],
                     pred_scores: Sequence[float]) -> Tuple[float, float]:
  """(Pearson, Spearman) correlation of predicted and gold scores; 0.0 for a constant side."""
  _check_same_length(gold_scores, pred_scores)
  gold = np.asarray(gold_scores, np.float64)
  pred = np.asarray(pred_scores, np.float64)
  return (_correlation(scipy_stats.pearsonr, gold, pred),
          _correlation(scipy_stats.spearmanr, gold, pred))


# GLUE's conventions. Tasks whose F1 of class "1" GLUE reports (and averages with accuracy).
GLUE_F1_TASKS = ("MRPC", "QQP")
GLUE_POSITIVE_LABEL = "1"
GLUE_MATTHEWS_TASKS = ("CoLA",)
# The dev metric that picks the best checkpoint; "accuracy" for the other tasks.
GLUE_SELECTION_METRICS = {
    "CoLA": "matthews_corrcoef",
    "STS-B": "pearson_spearman_mean",
    "MRPC": "accuracy_f1_mean",
    "QQP": "accuracy_f1_mean",
}


def glue_selection_metric(task: str) -> str:
  """The dev metric that selects a GLUE task's best checkpoint (canonical task name)."""
  return GLUE_SELECTION_METRICS.get(task, "accuracy")


def glue_metrics(task: str, labels: Sequence[str], gold_examples: Sequence,
                 predictions: Sequence) -> dict:
  """Whole-set metrics of GLUE `task` from predicted labels (or scores for regression).

  Args:
    task: canonical task name ("CoLA", "STS-B", ...).
    labels: the task's label vocabulary; empty for regression.
    gold_examples: SentencePairExample-like, with `.label` (classification) or `.score`.
    predictions: one label string (or score) per example.
  """
  if not labels:
    return regression_metrics([e.score for e in gold_examples], predictions)
  return classification_metrics(
      [e.label for e in gold_examples], predictions, labels,
      positive_label=GLUE_POSITIVE_LABEL if task in GLUE_F1_TASKS else "",
      with_matthews=task in GLUE_MATTHEWS_TASKS)


def classification_metrics(gold_labels: Sequence[str], pred_labels: Sequence[str],
                           labels: Sequence[str], positive_label: str = "",
                           with_matthews: bool = False) -> dict:
  """Whole-set metrics of a GLUE classification task.

  Args:
    gold_labels, pred_labels: one label string per example.
    labels: the task's label vocabulary (rows and columns of the confusion matrix).
    positive_label: if set, also F1 of this class and the mean of accuracy and F1.
    with_matthews: also the Matthews correlation.

  Returns:
    {"num_examples", "accuracy", ["f1", "accuracy_f1_mean"], ["matthews_corrcoef"],
     "confusion_matrix": {"labels": [...], "counts": [[gold row][predicted column]]}}.
  """
  _check_same_length(gold_labels, pred_labels)
  result = {"num_examples": len(gold_labels),
            "accuracy": accuracy(gold_labels, pred_labels)}
  if positive_label:
    result["f1"] = positive_class_f1(gold_labels, pred_labels, positive_label)
    result["accuracy_f1_mean"] = (result["accuracy"] + result["f1"]) / 2
  if with_matthews:
    result["matthews_corrcoef"] = matthews_correlation(gold_labels, pred_labels)
  counts = sklearn_confusion_matrix(list(gold_labels), list(pred_labels), labels=list(labels))
  result["confusion_matrix"] = {"labels": list(labels), "counts": counts.tolist()}
  return result


def regression_metrics(gold_scores: Sequence[float], pred_scores: Sequence[float]) -> dict:
  """Whole-set metrics of a GLUE regression task (STS-B).

  Returns:
    {"num_examples", "pearson", "spearman", "pearson_spearman_mean", "mse"}.
  """
  pearson, spearman = pearson_spearman(gold_scores, pred_scores)
  gold = np.asarray(gold_scores, np.float64)
  pred = np.asarray(pred_scores, np.float64)
  return {"num_examples": len(gold), "pearson": pearson, "spearman": spearman,
          "pearson_spearman_mean": (pearson + spearman) / 2,
          "mse": float(np.mean((gold - pred) ** 2))}


_GLUE_TABLE_ROWS = (
    ("accuracy", "accuracy"), ("F1 (positive class)", "f1"),
    ("mean of accuracy and F1", "accuracy_f1_mean"), ("Matthews corr.", "matthews_corrcoef"),
    ("Pearson", "pearson"), ("Spearman", "spearman"),
    ("mean of Pearson and Spearman", "pearson_spearman_mean"),
)


def format_glue_metrics_table(metrics: dict, title: str = "") -> str:
  """Renders `classification_metrics` / `regression_metrics` output as fixed-width text.

  Returns:
    Examples, every metric present (x 100, 2 decimals; MSE as is), and for classification the
    confusion matrix (rows gold, columns predicted).
  """
  rows = [("examples", str(metrics["num_examples"]))]
  rows += [(name, f"{100.0 * metrics[key]:.2f}") for name, key in _GLUE_TABLE_ROWS
           if key in metrics]
  if "mse" in metrics:
    rows.append(("mean squared error", f"{metrics['mse']:.4f}"))
  if "num_truncated" in metrics:
    rows.append(("truncated examples", str(metrics["num_truncated"])))
  parts = [title] if title else []
  parts.append(pd.DataFrame({"value": [value for _, value in rows]},
                            index=[name for name, _ in rows]).to_string())
  if "confusion_matrix" in metrics:
    matrix = metrics["confusion_matrix"]
    parts += ["", "confusion matrix (rows gold, columns predicted):",
              pd.DataFrame(matrix["counts"], index=matrix["labels"],
                           columns=matrix["labels"]).to_string()]
  return "\n".join(parts) + "\n"


def mean_and_std(values: Sequence[float]) -> dict:
  """{"mean", "std", "values"} of one metric over runs (e.g. seeds); std is the sample one (n - 1).

  One value has std 0.0; no values give mean and std None (e.g. a metric no run could compute).
  """
  values = [float(v) for v in values]
  if not values:
    return {"mean": None, "std": None, "values": []}
  mean = sum(values) / len(values)
  variance = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)
              if len(values) > 1 else 0.0)
  return {"mean": mean, "std": variance ** 0.5, "values": values}
