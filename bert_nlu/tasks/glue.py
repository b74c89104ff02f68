"""GLUE: sentence (pair) classification and STS-B regression on the pooled [CLS] output.

Heads (on the pooled output, after dropout):
  classification: dense -> logits [batch, num_labels]; softmax cross-entropy, mean over the batch.
  regression (STS-B): dense -> one score per example [batch]; mean squared error to the gold score.
Predictions: label_id [batch] + probabilities [batch, num_labels], or score [batch].
Metrics are whole-set (`bert_nlu.metrics.classification_metrics` / `regression_metrics`), computed
once when the Estimator asks for their values; each task's checkpoint-selection metric follows
the GLUE convention (`bert_nlu.metrics.GLUE_SELECTION_METRICS`).
"""

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from bert_nlu import metrics
from bert_nlu.compat import tf
from bert_nlu.data import tfrecords
from bert_nlu.data.examples import SentencePairExample
from bert_nlu.data.glue import GlueLabels
from bert_nlu.tasks import metric_ops as metric_ops_lib

def eval_metric_names(task: str, is_regression: bool) -> Tuple[str, ...]:
  """The scalar dev metrics of a task (TensorBoard + the Estimator's eval result)."""
  if is_regression:
    return ("pearson", "spearman", "pearson_spearman_mean", "mse")
  names = ("accuracy",)
  if task in metrics.GLUE_F1_TASKS:
    names += ("f1", "accuracy_f1_mean")
  if task in metrics.GLUE_MATTHEWS_TASKS:
    names += ("matthews_corrcoef",)
  return names


class WholeSetGlueMetrics:
  """Collects the predictions of a whole evaluation and computes the task's metrics once.

  `update` and `value` are called through tf.py_func from the eval graph (a new instance per
  evaluation); `update_batch` and `prediction_rows` serve `train.predict_split`.
  """

  def __init__(self, gold_examples: Sequence[SentencePairExample], labels: GlueLabels):
    self._gold = gold_examples
    self._labels = labels
    self._predictions: Dict[int, object] = {}  # example index -> label string or score
    self._probabilities: Dict[int, float] = {}
    self._result = None

  def update(self, example_index, predicted) -> np.int64:
    """Records one batch: example_index [batch], predicted label ids (or scores) [batch]."""
    for row, index in enumerate(example_index):
      if self._labels.is_regression:
        self._predictions[int(index)] = float(predicted[row])
      else:
        self._predictions[int(index)] = self._labels.labels[int(predicted[row])]
    self._result = None
    return np.int64(len(self._predictions))

  def update_batch(self, batch: Dict[str, np.ndarray]) -> None:
    """Records a batch of `GlueTask.build_predictions` outputs (numpy)."""
    if self._labels.is_regression:
      self.update(batch["example_index"], batch["score"])
      return
    self.update(batch["example_index"], batch["label_id"])
    for row, index in enumerate(batch["example_index"]):
      self._probabilities[int(index)] = float(np.max(batch["probabilities"][row]))

  def result(self) -> dict:
    if self._result is None:
      indices = sorted(self._predictions)
      if not indices:
        raise ValueError("evaluation saw no examples")
      self._result = metrics.glue_metrics(self._labels.task, self._labels.labels,
                                  [self._gold[i] for i in indices],
                                  [self._predictions[i] for i in indices])
    return self._result

  def value(self, name: str) -> np.float32:
    return np.float32(self.result()[name])

  def prediction_rows(self) -> List[dict]:
    """Per example: guid, texts, gold and predicted label (probability) or score."""
    rows = []
    for index, example in enumerate(self._gold):
      row = {"guid": example.guid, "text_a": example.text_a, "text_b": example.text_b}
      if self._labels.is_regression:
        row.update(gold_score=example.score, pred_score=self._predictions.get(index))
      else:
        row.update(gold_label=example.label, pred_label=self._predictions.get(index),
                   probability=self._probabilities.get(index))
      rows.append(row)
    return rows


class GlueTask:
  """One GLUE task: classification over its labels, or regression (STS-B)."""

  name = "glue"
  feature_encoding = tfrecords.SENTENCE_PAIR_ENCODING

  def __init__(self, labels: GlueLabels):
    """Args: labels: the task's label vocabulary (empty for regression)."""
    self.labels = labels

  @property
  def selection_metric(self) -> str:
    return metrics.glue_selection_metric(self.labels.task)

  @property
  def eval_metric_names(self) -> Tuple[str, ...]:
    return eval_metric_names(self.labels.task, self.labels.is_regression)

  def build_logits(self, pooled_output: tf.Tensor, sequence_output: Optional[tf.Tensor],
                   is_training: bool, head_dropout: float,
                   initializer_range: float) -> Dict[str, tf.Tensor]:
    """Args: pooled_output [batch, hidden] (sequence_output is not used).

    Returns: {"logits": [batch, num_labels]} or, for regression, {"score": [batch]} (float32).
    """
    del sequence_output  # the pooled [CLS] vector is the sentence (pair) representation
    rate = head_dropout if is_training else 0.0
    with tf.variable_scope("glue_head"):
      pooled = tf.nn.dropout(pooled_output, rate=rate)  # [batch, hidden]
      units = 1 if self.labels.is_regression else len(self.labels.labels)
      outputs = tf.layers.dense(
          pooled, units, name="dense",
          kernel_initializer=tf.truncated_normal_initializer(stddev=initializer_range),
          bias_initializer=tf.zeros_initializer())  # [batch, units]
      outputs = tf.cast(outputs, tf.float32)
    if self.labels.is_regression:
      return {"score": tf.squeeze(outputs, axis=-1)}  # [batch]
    return {"logits": outputs}

  def build_losses(self, logits: Dict[str, tf.Tensor],
                   features: Dict[str, tf.Tensor]) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    """Mean cross-entropy (classification) or mean squared error (regression) over the batch."""
    if self.labels.is_regression:
      loss = tf.reduce_mean(tf.square(logits["score"] - features["score"]))
      return loss, {"regression_loss": loss}
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=features["label_id"], logits=logits["logits"]))  # mean of [batch]
    return loss, {"classification_loss": loss}

  def build_predictions(self, logits: Dict[str, tf.Tensor],
                        features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """label_id [batch] + probabilities [batch, num_labels], or score [batch]; example_index
    passed through if given."""
    if self.labels.is_regression:
      predictions = {"score": logits["score"]}
    else:
      predictions = {
          "label_id": tf.argmax(logits["logits"], axis=-1, output_type=tf.int32),
          "probabilities": tf.nn.softmax(logits["logits"], axis=-1),
      }
    if "example_index" in features:
      predictions["example_index"] = features["example_index"]
    return predictions

  # Dev metrics the best export carries for prediction: none.
  exported_metrics = ()

  def metrics_collector(self, gold_examples: Sequence[SentencePairExample],
                        intent_threshold=None, train_split=None) -> WholeSetGlueMetrics:
    """The whole-set collector of an evaluation (the NLU-only options are ignored)."""
    del intent_threshold, train_split
    return WholeSetGlueMetrics(gold_examples, self.labels)

  def build_eval_metric_ops(self, predictions: Dict[str, tf.Tensor],
                            gold_examples: Sequence[SentencePairExample]) -> Dict[str, tuple]:
    """Whole-set metrics as Estimator metric ops (value_op, update_op)."""
    collector = self.metrics_collector(gold_examples)
    predicted = predictions["score" if self.labels.is_regression else "label_id"]
    update_op = tf.py_func(collector.update, [predictions["example_index"], predicted],
                           tf.int64, stateful=True, name="collect_glue_predictions")
    return metric_ops_lib.whole_set_metric_ops(collector, update_op, self.eval_metric_names)

  def serving_features(self) -> Dict[str, tf.Tensor]:
    """Placeholders of the exported SavedModel: int32 [batch, seq] each."""
    return {name: tf.placeholder(tf.int32, [None, None], name=name)
            for name in ("input_ids", "input_mask", "segment_ids")}

  def export_outputs(self, predictions: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    names = ("score",) if self.labels.is_regression else ("label_id", "probabilities")
    return {name: predictions[name] for name in names}

  @staticmethod
  def format_metrics_table(result: dict, title: str = "") -> str:
    return metrics.format_glue_metrics_table(result, title)
