"""Joint intent classification + slot filling: heads, masked losses, predictions, metrics.

Heads:
  intent: dropout + dense on the pooled [CLS] output       -> intent_logits [batch, num_intents]
  slots:  dropout + dense on every sequence position        -> slot_logits [batch, seq, num_tags]
    with slot_crf, a linear-chain CRF (transition matrix [num_tags, num_tags]) runs over the FIRST
    PIECES of the words only (gathered into [batch, words, num_tags]), not over the attention mask.
    With slot_head "bio_type", two dense layers on the same input instead: a BIO position softmax
    -> slot_position_logits [batch, seq, 3] (O, B, I) and a slot-type softmax -> slot_type_logits
    [batch, seq, num_types] (the types of `labels.bio_vocabulary`).
Losses (both means over what they cover):
  intent_loss: cross-entropy (focal with focal_gamma > 0) over examples whose intent is known in
    training. With multilabel (label maps of atomic intents, a label is a set): one sigmoid per
    atomic intent, binary cross-entropy summed over the intents and averaged over the examples
    (`multilabel_intent_loss`); intents unseen in training are absent from the target.
  slot_loss: cross-entropy (focal with focal_gamma > 0) over first pieces of words whose tag is
    known in training, averaged over the batch's words ("token") or per sentence, then over
    sentences ("sentence" slot_loss_normalization); other pieces,
    [CLS], [SEP] and padding are excluded (first_piece_mask). With slot_crf: the CRF's negative
    log-likelihood of each utterance's word tag sequence, summed and divided by the number of words
    (the same per-word scale as the cross-entropy). A tag unseen in training (dev/test only) has
    no index; the CRF scores it as tag 0 in the evaluation loss (metrics are unaffected).
    With slot_head "bio_type": slot_loss = position cross-entropy over the same words + type
    cross-entropy over those of them whose gold tag is not O, each normalised as above and
    focal with focal_gamma > 0 (`bio_type_slot_losses`).
  loss = intent_loss_weight * intent_loss + slot_loss.
Decoding: argmax per first piece, or with slot_crf the Viterbi path over the words; with
allowed_slot_tags (--constrain_slots_to_intent) the scores of the tags the predicted intent never
takes in training are lowered by 1e4 first (`bert_nlu.slot_constraints`). With slot_head
"bio_type" (`decode_bio_type`): the position argmax; O gives "O", B or I gives the tag
"<position>-<type argmax>", as its id in the slot tag vocabulary (a combination the vocabulary lacks
becomes the same type at the other position, `labels.bio_vocabulary`), so predictions, exports and
metrics downstream are those of the tags head. Each word is decoded on its own: an I-x after O or
after another type is kept, and the metrics (seqeval, conlleval rules) and the predicted spans read
it as the start of a chunk, as they read any tag sequence. The tag probabilities
(slot_probabilities) are p(O) = p(position O) and p(B-x) = p(B) p(x), p(I-x) = p(I) p(x), a
combination the vocabulary lacks adding to the tag it maps to. Multilabel
intents: every intent with probability >= a threshold chosen on dev, at least the top one
(`bert_nlu.intent_sets`); the evaluation reports the threshold as the metric "intent_threshold".
Evaluation metrics are exact and whole-set: each eval batch's predictions are collected (by
example_index) and `bert_nlu.metrics.nlu_metrics` runs once on all of them, against the gold words
of the examples, when the Estimator asks for the metric values.
"""

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from bert_nlu import distill, intent_sets, metrics, mixed_precision, slot_constraints
from bert_nlu.compat import crf, tf
from bert_nlu.data import tfrecords
from bert_nlu.data.examples import NluExample
from bert_nlu.data.features import word_level_tags
from bert_nlu.data.labels import BIO_POSITIONS, BioVocabulary, LabelMaps, intent_set
from bert_nlu.tasks import metric_ops as metric_ops_lib

# Dev metrics reported at every periodic evaluation (TensorBoard + eval_result dict).
EVAL_METRIC_NAMES = ("intent_accuracy", "slot_f1", "slot_precision", "slot_recall",
                     "whole_frame_accuracy", "token_f1_micro", "token_f1_macro")
# ... and with multilabel intents the dev-chosen decision threshold.
INTENT_THRESHOLD_METRIC = "intent_threshold"


def _dense(inputs: tf.Tensor, units: int, initializer_range: float, name: str) -> tf.Tensor:
  return tf.layers.dense(
      inputs, units, name=name,
      kernel_initializer=tf.truncated_normal_initializer(stddev=initializer_range),
      bias_initializer=tf.zeros_initializer())


SLOT_LOSS_NORMALIZATIONS = ("token", "sentence")
# "tags": one softmax (or CRF) over the BIO tags; "bio_type": a position and a slot-type softmax.
SLOT_HEADS = ("tags", "bio_type")


def focal_cross_entropy(labels: tf.Tensor, logits: tf.Tensor, gamma: float) -> tf.Tensor:
  """Focal loss (Lin et al. 2017) of a softmax: -(1 - p_t)^gamma * log p_t, p_t = p(label).

  Args:
    labels: int32 [...] class ids.
    logits: float32 [..., num_classes].
    gamma: >= 0; 0 is the softmax cross-entropy itself (same op, same values).
  Returns:
    float32 [...].
  """
  xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
  if gamma == 0:
    return xent
  # 1 - p_t is floored so that the power's gradient stays finite when p_t rounds to 1.
  return tf.pow(tf.maximum(1.0 - tf.exp(-xent), 1e-12), gamma) * xent


def normalized_slot_loss(word_losses: tf.Tensor, word_weights: tf.Tensor,
                         normalization: str) -> tf.Tensor:
  """Reduces per-word slot losses to a scalar.

  Args:
    word_losses: float32 [batch, seq] (any value where the weight is 0).
    word_weights: float32 [batch, seq], 1 on the words that count, else 0.
    normalization: "token": the mean over all counted words of the batch (long sentences weigh
      more); "sentence": each sentence's mean over its words, averaged over the sentences with
      at least one counted word.
  """
  if normalization == "token":
    return tf.reduce_sum(word_losses * word_weights) / tf.maximum(tf.reduce_sum(word_weights), 1.0)
  if normalization != "sentence":
    raise ValueError(f"slot loss normalization {normalization!r} not in {SLOT_LOSS_NORMALIZATIONS}")
  words = tf.reduce_sum(word_weights, axis=1)  # [batch]
  sentence_losses = tf.reduce_sum(word_losses * word_weights, axis=1) / tf.maximum(words, 1.0)
  has_words = tf.cast(words > 0, tf.float32)
  return tf.reduce_sum(sentence_losses * has_words) / tf.maximum(tf.reduce_sum(has_words), 1.0)


def bio_type_slot_losses(position_logits: tf.Tensor, type_logits: tf.Tensor, slot_ids: tf.Tensor,
                         first_piece_mask: tf.Tensor, bio: BioVocabulary, focal_gamma: float,
                         normalization: str) -> Tuple[tf.Tensor, tf.Tensor]:
  """The two slot losses of the factored head.

  Args:
    position_logits: float32 [batch, seq, len(BIO_POSITIONS)].
    type_logits: float32 [batch, seq, len(bio.types)].
    slot_ids: int32 [batch, seq] gold tag ids (UNKNOWN_ID for a tag unseen in training).
    first_piece_mask: int [batch, seq], 1 on the first piece of each word.
    bio: the factoring of the slot tag vocabulary.
    focal_gamma: focal exponent of both losses (0 = cross-entropy).
    normalization: `normalized_slot_loss`'s "token" or "sentence".
  Returns:
    position_loss: over the first pieces whose tag is known; type_loss: over those of them whose
    gold position is not O. Scalars.
  """
  known = slot_ids >= 0
  tag_ids = tf.maximum(slot_ids, 0)  # [batch, seq]
  position_ids = tf.gather(tf.constant(bio.tag_positions, tf.int32), tag_ids)  # [batch, seq]
  type_ids = tf.gather(tf.constant(bio.tag_types, tf.int32), tag_ids)  # [batch, seq], -1 on O
  word_weight = tf.cast(first_piece_mask, tf.float32) * tf.cast(known, tf.float32)
  type_weight = word_weight * tf.cast(position_ids > 0, tf.float32)  # [batch, seq]
  position_loss = normalized_slot_loss(
      focal_cross_entropy(position_ids, position_logits, focal_gamma), word_weight, normalization)
  type_loss = normalized_slot_loss(
      focal_cross_entropy(tf.maximum(type_ids, 0), type_logits, focal_gamma), type_weight,
      normalization)
  return position_loss, type_loss


def decode_bio_type(position_scores: tf.Tensor, type_scores: tf.Tensor,
                    bio: BioVocabulary) -> tf.Tensor:
  """Tag ids of the position argmax and the type argmax ("O" for position O).

  Args:
    position_scores: [batch, seq, len(BIO_POSITIONS)] logits or probabilities.
    type_scores: [batch, seq, len(bio.types)] logits or probabilities, at least one type.
    bio: the factoring of the slot tag vocabulary (its combination_tags map back to tag ids).
  Returns:
    int32 [batch, seq] slot tag ids.
  """
  position = tf.argmax(position_scores, axis=-1, output_type=tf.int32)  # [batch, seq]
  slot_type = tf.argmax(type_scores, axis=-1, output_type=tf.int32)  # [batch, seq]
  combination_tags = tf.constant(bio.combination_tags, tf.int32)  # [positions, types]
  return tf.gather_nd(combination_tags, tf.stack([position, slot_type], axis=-1))


def bio_type_tag_probabilities(position_p: tf.Tensor, type_p: tf.Tensor, bio: BioVocabulary,
                               num_tags: int) -> tf.Tensor:
  """p(tag) of the factored head: p(O) for O, p(position) p(type) for B-type / I-type.

  Args:
    position_p: [batch, seq, len(BIO_POSITIONS)] the position softmax.
    type_p: [batch, seq, len(bio.types)] the type softmax.
    bio: the factoring of the slot tag vocabulary.
    num_tags: the size of the slot tag vocabulary.
  Returns:
    float32 [batch, seq, num_tags], summing to 1 over the tags: a (position, type) combination
    the vocabulary lacks adds its probability to the tag it maps to (bio.combination_tags).
  """
  combinations = tf.concat([position_p[..., :1], position_p[..., 1:2] * type_p,
                            position_p[..., 2:3] * type_p], axis=-1)  # [batch, seq, 1 + 2 types]
  rows = (0,) + bio.combination_tags[1] + bio.combination_tags[2]  # tag of each combination
  to_tags = tf.one_hot(rows, num_tags, dtype=tf.float32)  # [1 + 2 types, num_tags]
  return tf.einsum("bsc,ct->bst", combinations, to_tags)


def route_slot_logits(slot_logits_per_intent: tf.Tensor, intent_ids: tf.Tensor) -> tf.Tensor:
  """Each example's slot logits from the head of its intent.

  Args:
    slot_logits_per_intent: [batch, seq, num_intents, num_tags].
    intent_ids: int32 [batch], in [0, num_intents).
  Returns:
    [batch, seq, num_tags].
  """
  return tf.gather(slot_logits_per_intent, intent_ids[:, None], axis=2, batch_dims=1)[:, :, 0]


def gather_first_pieces(values: tf.Tensor, first_piece_mask: tf.Tensor):
  """Moves each row's first pieces to the front, in order.

  Args:
    values: [batch, seq, ...] per-piece values.
    first_piece_mask: [batch, seq] int, 1 on the first piece of each word.
  Returns:
    word_values: [batch, max_words, ...], row b's first len_b entries are its words' values.
    word_lengths: [batch] int32, number of words of each row.
    order: [batch, seq] int32 permutation of piece positions used (first pieces first, stable).
  """
  seq_length = tf.shape(first_piece_mask)[1]
  positions = tf.range(seq_length)[None, :]  # [1, seq]
  is_first = tf.cast(tf.cast(first_piece_mask, tf.bool), tf.int32)  # [batch, seq] 0/1
  sort_key = positions + seq_length * (1 - is_first)  # first pieces sort before the rest
  order = tf.argsort(sort_key, axis=1, stable=True)  # [batch, seq]
  word_lengths = tf.reduce_sum(is_first, axis=1)  # [batch]
  max_words = tf.reduce_max(tf.concat([word_lengths, [0]], axis=0))
  word_values = tf.gather(values, order, batch_dims=1)[:, :max_words]
  return word_values, word_lengths, order


def multilabel_intent_loss(intent_logits: tf.Tensor, intent_ids: tf.Tensor) -> tf.Tensor:
  """Binary cross-entropy of one sigmoid per atomic intent, summed over intents, mean over examples.

  Args:
    intent_logits: [batch, num_intents] float32.
    intent_ids: [batch, max_intents] int32 atomic intent ids of each example's set, padded (and
      unknown intents marked) with -1.
  Returns:
    Scalar loss.
  """
  num_intents = tf.shape(intent_logits)[1]
  targets = tf.reduce_max(tf.one_hot(intent_ids, num_intents, dtype=tf.float32),
                          axis=1)  # [batch, num_intents]; one_hot(-1) is all zeros
  per_intent = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=intent_logits)
  return tf.reduce_mean(tf.reduce_sum(per_intent, axis=1))


def scatter_word_values(word_values: tf.Tensor, order: tf.Tensor) -> tf.Tensor:
  """Inverse of `gather_first_pieces` for [batch, words] values -> [batch, seq].

  Piece positions that are not first pieces get the value of some word (callers mask them).
  """
  seq_length = tf.shape(order)[1]
  padded = tf.pad(word_values, [[0, 0], [0, seq_length - tf.shape(word_values)[1]]])
  inverse = tf.argsort(order, axis=1, stable=True)  # [batch, seq]
  return tf.gather(padded, inverse, batch_dims=1)


class WholeSetNluMetrics:
  """Collects word-level predictions over a whole evaluation and computes metrics once.

  Lives in Python; `update` and `value` are called through tf.py_func from the eval graph. The
  Estimator's checkpoint evaluation builds a new eval graph (and so a new instance) for every
  evaluation; the in-process evaluator (bert_nlu/evaluation.py) keeps one graph, and each of its
  evaluations runs the same examples again, so every prediction recorded is overwritten. With
  multilabel label maps the intent probabilities are kept and turned into sets at `result()`,
  with `intent_threshold` if given, else with the threshold that is best on this very set (dev).
  `update_batch` and `prediction_rows` serve `train.predict_split`.
  """

  def __init__(self, gold_examples: Sequence[NluExample], label_maps: LabelMaps,
               intent_threshold: Optional[float] = None,
               train_intents: Optional[Iterable[str]] = None):
    """Args:
      gold_examples: the evaluated examples, indexed by example_index.
      label_maps: the run's vocabularies.
      intent_threshold: multilabel only: the decision threshold (None = choose it here).
      train_intents: the training labels; given, the result also holds the multi-intent metrics
        (`metrics.multi_intent_metrics`: per-intent F1, unseen combinations).
    """
    self._gold = gold_examples
    self._label_maps = label_maps
    self._intent_threshold = intent_threshold
    self._train_intents = None if train_intents is None else set(train_intents)
    self._pred_intents: Dict[int, str] = {}
    self._intent_probabilities: Dict[int, np.ndarray] = {}
    self._pred_tags: Dict[int, list] = {}
    self._result = None

  def update(self, example_index, intent_ids, intent_probabilities, slot_ids,
             first_piece_mask) -> np.int64:
    """Records one batch. Shapes: [batch], [batch], [batch, intents], [batch, seq], [batch, seq]."""
    for row, index in enumerate(example_index):
      example = self._gold[int(index)]
      self._pred_intents[int(index)] = self._label_maps.intents[int(intent_ids[row])]
      self._intent_probabilities[int(index)] = np.asarray(intent_probabilities[row])
      self._pred_tags[int(index)] = word_level_tags(
          first_piece_mask[row], slot_ids[row], self._label_maps.slot_tags, len(example.words))
    self._result = None
    return np.int64(len(self._pred_intents))

  def update_batch(self, batch: Dict[str, np.ndarray]) -> None:
    """Records a batch of `NluTask.build_predictions` outputs (numpy)."""
    self.update(batch["example_index"], batch["intent_id"], batch["intent_probabilities"],
                batch["slot_ids"], batch["first_piece_mask"])

  def prediction_rows(self) -> List[dict]:
    """Per example: guid, text, gold vs predicted intent(s) (the lowest probability of the
    predicted set) and word tags. Call after `result()`."""
    self.result()
    rows = []
    for index, example in enumerate(self._gold):
      probabilities = (self.predicted_intent_probabilities(index)
                       if index in self._pred_intents else {})
      rows.append({
          "guid": example.guid, "text": " ".join(example.words),
          "gold_intent": example.intent, "pred_intent": self._pred_intents.get(index),
          "intent_confidence": min(probabilities.values()) if probabilities else None,
          "gold_tags": list(example.slot_tags), "pred_tags": self._pred_tags.get(index)})
    return rows

  def predicted_intent(self, example_index: int) -> str:
    """The predicted intent (multilabel: the canonical set label; call after `result()`)."""
    return self._pred_intents[example_index]

  def predicted_intent_probabilities(self, example_index: int) -> Dict[str, float]:
    """{intent: probability} of the predicted intent(s) (call after `result()`)."""
    probabilities = self._intent_probabilities[example_index]
    names = intent_set(self._pred_intents[example_index]) if self._label_maps.multilabel else [
        self._pred_intents[example_index]]
    return {name: float(probabilities[self._label_maps.intent_id(name)]) for name in names}

  def predicted_tags(self, example_index: int) -> list:
    return self._pred_tags[example_index]

  def _decide_intent_sets(self, indices: Sequence[int]) -> float:
    """Multilabel: sets the predicted labels of `indices`; returns the threshold used."""
    probabilities = np.stack([self._intent_probabilities[i] for i in indices])  # [n, intents]
    threshold = self._intent_threshold
    if threshold is None:
      gold_ids = [self._label_maps.intent_set_ids(self._gold[i].intent) for i in indices]
      threshold = intent_sets.choose_threshold(
          probabilities, intent_sets.multi_hot(gold_ids, len(self._label_maps.intents)),
          gold_representable=np.array([min(ids) >= 0 for ids in gold_ids]))
    chosen = intent_sets.decide_intent_sets(probabilities, threshold)
    for row, index in enumerate(indices):
      self._pred_intents[index] = self._label_maps.intent_label_of_ids(np.flatnonzero(chosen[row]))
    return threshold

  def result(self) -> dict:
    if self._result is None:
      indices = sorted(self._pred_intents)
      if not indices:
        raise ValueError("evaluation saw no examples")
      threshold = self._decide_intent_sets(indices) if self._label_maps.multilabel else None
      gold = [self._gold[i] for i in indices]
      gold_intents = [e.intent for e in gold]
      pred_intents = [self._pred_intents[i] for i in indices]
      gold_tags = [list(e.slot_tags) for e in gold]
      pred_tags = [self._pred_tags[i] for i in indices]
      self._result = metrics.nlu_metrics(gold_intents=gold_intents, gold_tags=gold_tags,
                                         pred_intents=pred_intents, pred_tags=pred_tags)
      if threshold is not None:
        self._result[INTENT_THRESHOLD_METRIC] = threshold
      if self._train_intents is not None:
        self._result["multi_intent"] = metrics.multi_intent_metrics(
            gold_intents, gold_tags, pred_intents, pred_tags, self._train_intents)
    return self._result

  def value(self, name: str) -> np.float32:
    return np.float32(self.result()[name])


class NluTask:
  """Joint intent + slot task over a fixed pair of label vocabularies."""

  name = "nlu"
  feature_encoding = tfrecords.NLU_ENCODING
  # The dev metric that picks the best checkpoint.
  selection_metric = "whole_frame_accuracy"

  @property
  def eval_metric_names(self) -> Tuple[str, ...]:
    """Dev metrics of every periodic evaluation (multilabel: also the chosen threshold)."""
    return EVAL_METRIC_NAMES + ((INTENT_THRESHOLD_METRIC,) if self.label_maps.multilabel else ())

  def __init__(self, label_maps: LabelMaps, intent_loss_weight: float = 1.0,
               slot_intent_context: bool = False, slot_crf: bool = False,
               distill_temperature: float = 1.0, distill_alpha: float = 0.0,
               focal_gamma: float = 0.0, slot_loss_normalization: str = "token",
               per_intent_slot_heads: bool = False, slot_head: str = "tags",
               allowed_slot_tags: Optional[np.ndarray] = None):
    """Args:
      label_maps: intent and slot-tag vocabularies (multilabel ones give the sigmoid head).
      intent_loss_weight: loss = intent_loss_weight * intent_loss + slot_loss.
      slot_intent_context: feed the slot head each token's vector concatenated with the pooled
        utterance vector (what the intent head sees), so tags can depend on the intent.
      slot_crf: a linear-chain CRF over the words' first pieces (loss and Viterbi decoding).
      distill_temperature, distill_alpha: when training batches carry teacher distributions
        (bert_nlu.distill), each loss mixes the gold term with the teacher term.
      focal_gamma: focal loss exponent for the intent and (softmax) slot losses; 0 = plain
        cross-entropy. The CRF's sequence likelihood is not focal-weighted.
      slot_loss_normalization: "token" or "sentence" (`normalized_slot_loss`).
      per_intent_slot_heads: one slot layer per intent; the loss goes through the gold intent's
        (the predicted one's where the gold intent is unknown), predictions through the
        predicted intent's.
      slot_head: "tags" (one softmax or CRF over the BIO tags) or "bio_type" (a position and a
        slot-type softmax; not with slot_crf, per_intent_slot_heads or distillation).
      allowed_slot_tags: optional [num_intents, num_tags] bool (`slot_constraints.allowed_tags`):
        predictions decode each row's slots with only its predicted intent's tags (the others'
        scores lowered by 1e4); slot_probabilities and the exported slot_logits stay the
        unconstrained ones. Not with multilabel intents, "bio_type" or per_intent_slot_heads.

    Raises:
      ValueError: slot_head is unknown, combined with what it does not support, or "bio_type"
        for slot tags without a single slot type.
    """
    if slot_head not in SLOT_HEADS:
      raise ValueError(f"slot head {slot_head!r} not in {SLOT_HEADS}")
    if slot_head == "bio_type" and (slot_crf or per_intent_slot_heads):
      raise ValueError("the bio_type slot head has no CRF and no per-intent layers")
    if slot_head == "bio_type" and not label_maps.slot_types:
      raise ValueError("the bio_type slot head needs at least one slot type in the slot tags")
    if allowed_slot_tags is not None:
      if label_maps.multilabel or slot_head == "bio_type" or per_intent_slot_heads:
        raise ValueError("intent-constrained slot decoding needs single-label intents, the "
                         "'tags' slot head and no per-intent slot heads")
      expected = (len(label_maps.intents), len(label_maps.slot_tags))
      if np.shape(allowed_slot_tags) != expected:
        raise ValueError(f"allowed_slot_tags has shape {np.shape(allowed_slot_tags)}, expected "
                         f"{expected} (intents x slot tags)")
    self.label_maps = label_maps
    self.intent_loss_weight = intent_loss_weight
    self.slot_intent_context = slot_intent_context
    self.slot_crf = slot_crf
    self.distill_temperature = distill_temperature
    self.distill_alpha = distill_alpha
    self.focal_gamma = focal_gamma
    self.slot_loss_normalization = slot_loss_normalization
    self.per_intent_slot_heads = per_intent_slot_heads
    self.slot_head = slot_head
    self.allowed_slot_tags = (None if allowed_slot_tags is None
                              else np.asarray(allowed_slot_tags, bool))

  def build_logits(self, pooled_output: tf.Tensor, sequence_output: tf.Tensor, is_training: bool,
                   head_dropout: float, initializer_range: float) -> Dict[str, tf.Tensor]:
    """Args: pooled_output [batch, hidden]; sequence_output [batch, seq, hidden].

    Returns: intent_logits [batch, num_intents], slot_logits [batch, seq, num_tags] (float32),
      and with slot_crf slot_transitions [num_tags, num_tags] (from-tag x to-tag scores). With
      per_intent_slot_heads also slot_logits_per_intent [batch, seq, num_intents, num_tags], and
      slot_logits is the PREDICTED intent's head (what predictions decode). With slot_head
      "bio_type": slot_position_logits [batch, seq, 3] and slot_type_logits [batch, seq,
      num_types] instead of slot_logits.
    """
    keep_rate = 1.0 - head_dropout if is_training else 1.0
    with tf.variable_scope("intent_head"):
      pooled = tf.nn.dropout(pooled_output, rate=1.0 - keep_rate)
      intent_logits = _dense(pooled, len(self.label_maps.intents), initializer_range, "dense")
    with tf.variable_scope("slot_head"):
      sequence = tf.nn.dropout(sequence_output, rate=1.0 - keep_rate)  # [batch, seq, hidden]
      if self.slot_intent_context:
        seq_length = tf.shape(sequence)[1]
        utterance = tf.tile(pooled[:, None, :], [1, seq_length, 1])  # [batch, seq, hidden]
        sequence = tf.concat([sequence, utterance], axis=-1)  # [batch, seq, 2 * hidden]
      # The loss, softmax and CRF read float32 logits, also under --bf16.
      logits = {"intent_logits": mixed_precision.float32_boundary(intent_logits)}
      if self.per_intent_slot_heads:
        num_intents, num_tags = len(self.label_maps.intents), len(self.label_maps.slot_tags)
        per_intent = _dense(sequence, num_intents * num_tags, initializer_range,
                            "per_intent_dense")  # [batch, seq, intents * tags]
        per_intent = tf.reshape(per_intent, tf.concat(
            [tf.shape(per_intent)[:2], [num_intents, num_tags]], axis=0))
        logits["slot_logits_per_intent"] = mixed_precision.float32_boundary(per_intent)
        predicted_intent = tf.argmax(logits["intent_logits"], axis=-1, output_type=tf.int32)
        logits["slot_logits"] = route_slot_logits(logits["slot_logits_per_intent"],
                                                  predicted_intent)
      elif self.slot_head == "bio_type":
        position_logits = _dense(sequence, len(BIO_POSITIONS), initializer_range,
                                 "position_dense")  # [batch, seq, 3]
        type_logits = _dense(sequence, len(self.label_maps.slot_types), initializer_range,
                             "type_dense")  # [batch, seq, num_types]
        logits["slot_position_logits"] = mixed_precision.float32_boundary(position_logits)
        logits["slot_type_logits"] = mixed_precision.float32_boundary(type_logits)
      else:
        slot_logits = _dense(sequence, len(self.label_maps.slot_tags), initializer_range, "dense")
        logits["slot_logits"] = mixed_precision.float32_boundary(slot_logits)
      if self.slot_crf:
        num_tags = len(self.label_maps.slot_tags)
        logits["slot_transitions"] = tf.get_variable(
            "crf_transitions", [num_tags, num_tags], tf.float32,
            initializer=tf.zeros_initializer())
    return logits

  def build_losses(self, logits: Dict[str, tf.Tensor],
                   features: Dict[str, tf.Tensor]) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    """Masked cross-entropies (see module docstring). Returns (loss, {name: scalar})."""
    if "slot_logits_per_intent" in logits:  # the slot loss goes through the GOLD intent's head
      intent_id = features["intent_id"]  # [batch]
      predicted = tf.argmax(logits["intent_logits"], axis=-1, output_type=tf.int32)
      logits = dict(logits, slot_logits=route_slot_logits(
          logits["slot_logits_per_intent"], tf.where(intent_id >= 0, intent_id, predicted)))
    if distill.TEACHER_INTENT in features:
      if self.slot_head == "bio_type":
        raise ValueError("distillation's slot targets are tag distributions: the bio_type slot "
                         "head cannot learn from them")
      return self._distilled_losses(logits, features)
    if self.label_maps.multilabel:
      intent_loss = multilabel_intent_loss(logits["intent_logits"], features["intent_ids"])
    else:
      intent_id = features["intent_id"]  # [batch]
      intent_known = tf.cast(intent_id >= 0, tf.float32)
      intent_xent = focal_cross_entropy(tf.maximum(intent_id, 0), logits["intent_logits"],
                                        self.focal_gamma)  # [batch]
      intent_loss = tf.reduce_sum(intent_xent * intent_known) / tf.maximum(
          tf.reduce_sum(intent_known), 1.0)

    slot_ids = features["slot_ids"]  # [batch, seq]
    if self.slot_crf:
      slot_loss = self._crf_slot_loss(logits, slot_ids, features["first_piece_mask"],
                                      self.slot_loss_normalization)
      loss = self.intent_loss_weight * intent_loss + slot_loss
      return loss, {"intent_loss": intent_loss, "slot_loss": slot_loss}
    if self.slot_head == "bio_type":
      position_loss, type_loss = bio_type_slot_losses(
          logits["slot_position_logits"], logits["slot_type_logits"], slot_ids,
          features["first_piece_mask"], self.label_maps.bio, self.focal_gamma,
          self.slot_loss_normalization)
      slot_loss = position_loss + type_loss
      loss = self.intent_loss_weight * intent_loss + slot_loss
      return loss, {"intent_loss": intent_loss, "slot_loss": slot_loss,
                    "slot_position_loss": position_loss, "slot_type_loss": type_loss}
    slot_weight = tf.cast(features["first_piece_mask"], tf.float32) * tf.cast(
        slot_ids >= 0, tf.float32)  # [batch, seq]
    slot_xent = focal_cross_entropy(tf.maximum(slot_ids, 0), logits["slot_logits"],
                                    self.focal_gamma)  # [batch, seq]
    slot_loss = normalized_slot_loss(slot_xent, slot_weight, self.slot_loss_normalization)

    loss = self.intent_loss_weight * intent_loss + slot_loss
    return loss, {"intent_loss": intent_loss, "slot_loss": slot_loss}

  def _distilled_losses(self, logits, features) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    """Gold and teacher terms mixed per head (bert_nlu.distill.mixed_cross_entropy)."""
    temperature, alpha = self.distill_temperature, self.distill_alpha
    intent_id = features["intent_id"]  # [batch]
    intent_loss = distill.mixed_cross_entropy(
        logits["intent_logits"], intent_id, features[distill.TEACHER_INTENT],
        tf.cast(intent_id >= 0, tf.float32), temperature, alpha)
    slot_ids, first_piece_mask = features["slot_ids"], features["first_piece_mask"]
    word_logits, word_lengths, order = gather_first_pieces(logits["slot_logits"],
                                                           first_piece_mask)
    max_words = tf.shape(word_logits)[1]
    word_tags = tf.gather(slot_ids, order, batch_dims=1)[:, :max_words]  # [batch, words]
    is_word = tf.sequence_mask(word_lengths, max_words, dtype=tf.float32)
    teacher = features[distill.TEACHER_SLOTS][:, :max_words]  # [batch, words, num_tags]
    if self.slot_crf:
      soft_loss = distill.mixed_cross_entropy(word_logits, word_tags, teacher, is_word,
                                              temperature, alpha=1.0)
      slot_loss = ((1.0 - alpha) * self._crf_slot_loss(logits, slot_ids, first_piece_mask)
                   + alpha * soft_loss)
    else:
      known = is_word * tf.cast(word_tags >= 0, tf.float32)
      slot_loss = distill.mixed_cross_entropy(word_logits, word_tags, teacher, known,
                                              temperature, alpha)
    loss = self.intent_loss_weight * intent_loss + slot_loss
    return loss, {"intent_loss": intent_loss, "slot_loss": slot_loss}

  @staticmethod
  def _crf_slot_loss(logits, slot_ids, first_piece_mask, normalization="token") -> tf.Tensor:
    """Per-utterance CRF negative log-likelihoods summed / number of words ("token"), or the
    mean over utterances of each one's / its number of words ("sentence"); a scalar."""
    word_logits, word_lengths, order = gather_first_pieces(logits["slot_logits"],
                                                           first_piece_mask)
    max_words = tf.shape(word_logits)[1]
    word_tags = tf.gather(tf.maximum(slot_ids, 0), order, batch_dims=1)[:, :max_words]
    log_likelihood, _ = crf.crf_log_likelihood(
        word_logits, word_tags, word_lengths, logits["slot_transitions"])  # [batch]
    has_words = tf.cast(word_lengths > 0, tf.float32)  # an utterance of 0 words scores 0
    if normalization == "sentence":
      per_word = -log_likelihood / tf.maximum(tf.cast(word_lengths, tf.float32), 1.0)
      return tf.reduce_sum(per_word * has_words) / tf.maximum(tf.reduce_sum(has_words), 1.0)
    return -tf.reduce_sum(log_likelihood * has_words) / tf.maximum(
        tf.cast(tf.reduce_sum(word_lengths), tf.float32), 1.0)

  def _crf_decode(self, logits, first_piece_mask) -> tf.Tensor:
    """Viterbi tags over each row's words, written back to first-piece positions: [batch, seq]."""
    word_logits, word_lengths, order = gather_first_pieces(logits["slot_logits"],
                                                           first_piece_mask)
    word_tags, _ = crf.crf_decode(word_logits, logits["slot_transitions"],
                                  word_lengths)  # [batch, words]
    piece_tags = scatter_word_values(word_tags, order)  # [batch, seq]
    argmax = tf.argmax(logits["slot_logits"], axis=-1, output_type=tf.int32)
    return tf.where(tf.cast(first_piece_mask, tf.bool), piece_tags, argmax)

  def _constrained_slot_logits(self, logits: Dict[str, tf.Tensor]) -> tf.Tensor:
    """slot_logits [batch, seq, num_tags] with the tags the predicted intent does not allow
    lowered by 1e4 (`slot_constraints.CONSTRAINED_SCORE`)."""
    intent_id = tf.argmax(logits["intent_logits"], axis=-1, output_type=tf.int32)  # [batch]
    allowed = tf.gather(tf.constant(self.allowed_slot_tags), intent_id)  # [batch, num_tags]
    penalty = tf.cast(tf.logical_not(allowed), tf.float32) * slot_constraints.CONSTRAINED_SCORE
    return logits["slot_logits"] + penalty[:, None, :]

  def build_predictions(self, logits: Dict[str, tf.Tensor],
                        features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """intent_id [batch] (the most probable), intent_probabilities [batch, num_intents] (softmax;
    multilabel: one sigmoid per intent), slot_ids [batch, seq],
    slot_confidence [batch, seq] (the per-piece softmax probability of the predicted tag; with
    slot_crf of the Viterbi tag), slot_probabilities [batch, seq, num_tags]; with slot_crf also
    slot_logits [batch, seq, num_tags] and slot_transitions [batch, num_tags, num_tags] (the
    transition matrix, repeated per row); example_index and first_piece_mask passed through if
    given. With slot_crf, features must carry first_piece_mask [batch, seq]. With slot_head
    "bio_type", slot_ids is `decode_bio_type`, slot_probabilities `bio_type_tag_probabilities`,
    and slot_position_probabilities [batch, seq, 3] and slot_type_probabilities [batch, seq,
    num_types] are the two softmaxes (which an ensemble averages)."""
    if self.label_maps.multilabel:
      intent_probabilities = tf.sigmoid(logits["intent_logits"])  # [batch, num_intents]
    else:
      intent_probabilities = tf.nn.softmax(logits["intent_logits"], axis=-1)
    if self.slot_head == "bio_type":
      factored = {  # [batch, seq, 3], [batch, seq, num_types]
          "slot_position_probabilities": tf.nn.softmax(logits["slot_position_logits"], axis=-1),
          "slot_type_probabilities": tf.nn.softmax(logits["slot_type_logits"], axis=-1)}
      slot_probabilities = bio_type_tag_probabilities(
          factored["slot_position_probabilities"], factored["slot_type_probabilities"],
          self.label_maps.bio, len(self.label_maps.slot_tags))
      slot_ids = decode_bio_type(logits["slot_position_logits"], logits["slot_type_logits"],
                                 self.label_maps.bio)
    else:
      slot_probabilities = tf.nn.softmax(logits["slot_logits"], axis=-1)
      decoded = logits
      if self.allowed_slot_tags is not None:
        decoded = dict(logits, slot_logits=self._constrained_slot_logits(logits))
      if self.slot_crf:
        slot_ids = self._crf_decode(decoded, features["first_piece_mask"])
      else:
        slot_ids = tf.argmax(decoded["slot_logits"], axis=-1, output_type=tf.int32)
    predictions = {
        "intent_id": tf.argmax(logits["intent_logits"], axis=-1, output_type=tf.int32),
        "intent_probabilities": intent_probabilities,
        "slot_ids": slot_ids,
        "slot_confidence": tf.gather(slot_probabilities, slot_ids, batch_dims=2),
        "slot_probabilities": slot_probabilities,
    }
    if self.slot_head == "bio_type":
      predictions.update(factored)
    if self.slot_crf:  # the CRF's potentials, which an ensemble averages (bert_nlu.ensemble)
      batch_size = tf.shape(logits["slot_logits"])[0]
      predictions["slot_logits"] = logits["slot_logits"]
      predictions["slot_transitions"] = tf.tile(logits["slot_transitions"][None],
                                                [batch_size, 1, 1])
    for name in ("example_index", "first_piece_mask"):
      if name in features:
        predictions[name] = features[name]
    return predictions

  def metrics_collector(self, gold_examples: Sequence[NluExample],
                        intent_threshold: Optional[float] = None,
                        train_split=None) -> WholeSetNluMetrics:
    """The whole-set collector of an evaluation (see `WholeSetNluMetrics`); `train_split` (an
    NluSplit) adds the multi-intent metrics that compare with the training combinations."""
    train_intents = None if train_split is None else train_split.intents()
    return WholeSetNluMetrics(gold_examples, self.label_maps, intent_threshold, train_intents)

  @property
  def exported_metrics(self) -> Tuple[str, ...]:
    """Dev metrics the best export carries for prediction (multilabel: the threshold)."""
    return (INTENT_THRESHOLD_METRIC,) if self.label_maps.multilabel else ()

  def build_eval_metric_ops(self, predictions: Dict[str, tf.Tensor],
                            gold_examples: Sequence[NluExample]) -> Dict[str, tuple]:
    """Whole-set word-level metrics as Estimator metric ops (value_op, update_op)."""
    collector = self.metrics_collector(gold_examples)
    update_op = tf.py_func(
        collector.update,
        [predictions["example_index"], predictions["intent_id"],
         predictions["intent_probabilities"], predictions["slot_ids"],
         predictions["first_piece_mask"]],
        tf.int64, stateful=True, name="collect_nlu_predictions")
    return metric_ops_lib.whole_set_metric_ops(collector, update_op, self.eval_metric_names)

  def serving_features(self) -> Dict[str, tf.Tensor]:
    """Placeholders of the exported SavedModel: int32 [batch, seq] each (with slot_crf also
    first_piece_mask, the words the CRF runs over)."""
    names = ["input_ids", "input_mask", "segment_ids"]
    if self.slot_crf:
      names.append("first_piece_mask")
    return {name: tf.placeholder(tf.int32, [None, None], name=name) for name in names}

  def export_outputs(self, predictions: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    names = ["intent_id", "intent_probabilities", "slot_ids", "slot_confidence",
             "slot_probabilities"]
    if self.slot_crf:
      names += ["slot_logits", "slot_transitions"]
    if self.slot_head == "bio_type":
      names += ["slot_position_probabilities", "slot_type_probabilities"]
    return {name: predictions[name] for name in names}

  @staticmethod
  def format_metrics_table(result: dict, title: str = "") -> str:
    return metrics.format_metrics_table(result, title)
