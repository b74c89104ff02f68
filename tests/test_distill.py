"""Distillation losses and the teacher-target join (end to end: tests/test_ensemble.py)."""

import numpy as np
import pytest

from bert_nlu import distill
from bert_nlu.compat import tf


def _softmax(z):
  e = np.exp(z - z.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def _loss(logits, gold, teacher, weights, temperature, alpha):
  with tf.Graph().as_default(), tf.Session() as session:
    return session.run(distill.mixed_cross_entropy(
        tf.constant(logits), tf.constant(gold), tf.constant(teacher), tf.constant(weights),
        temperature, alpha))


RNG = np.random.RandomState(3)
LOGITS = RNG.normal(size=(4, 5, 6)).astype(np.float32)
GOLD = RNG.randint(-1, 6, size=(4, 5)).astype(np.int32)
TEACHER = _softmax(RNG.normal(size=(4, 5, 6))).astype(np.float32)
WEIGHTS = ((GOLD >= 0) & (RNG.rand(4, 5) > 0.2)).astype(np.float32)


def test_all_weight_on_the_gold_labels_is_cross_entropy():
  log_probabilities = np.log(_softmax(LOGITS))
  picked = np.take_along_axis(log_probabilities, np.maximum(GOLD, 0)[..., None], -1)[..., 0]
  expected = -(picked * WEIGHTS).sum() / WEIGHTS.sum()
  assert _loss(LOGITS, GOLD, TEACHER, WEIGHTS, 3.0, 0.0) == pytest.approx(expected, rel=1e-5)


def test_the_teacher_term_is_temperature_scaled_soft_cross_entropy():
  temperature, alpha = 2.0, 0.3
  log_student = np.log(_softmax(LOGITS / temperature))
  soft = -(TEACHER * log_student).sum(-1)
  hard = -np.take_along_axis(np.log(_softmax(LOGITS)), np.maximum(GOLD, 0)[..., None], -1)[..., 0]
  per_position = (1 - alpha) * hard + alpha * temperature ** 2 * soft
  expected = (per_position * WEIGHTS).sum() / WEIGHTS.sum()
  assert _loss(LOGITS, GOLD, TEACHER, WEIGHTS, temperature, alpha) == pytest.approx(
      expected, rel=1e-5)


def test_soften_of_a_softmax_is_the_softmax_at_that_temperature():
  z = RNG.normal(size=(3, 7))
  np.testing.assert_allclose(distill.soften(_softmax(z), 2.5), _softmax(z / 2.5), rtol=1e-5)
  np.testing.assert_allclose(distill.soften(_softmax(z), 1.0), _softmax(z), rtol=1e-5)
  np.testing.assert_array_equal(distill.soften(np.zeros((2, 3)), 2.0), np.zeros((2, 3)))


def test_batches_gain_the_teacher_rows_of_their_examples():
  targets = {"intent": np.arange(12, dtype=np.float32).reshape(4, 3),
             "slots": np.arange(4 * 5 * 2, dtype=np.float32).reshape(4, 5, 2)}
  features = {"example_index": np.array([2, 0, 3], np.int32),
              "first_piece_mask": np.array([[0, 1, 1, 0], [0, 1, 0, 0], [0, 1, 1, 1]],
                                           np.int32)}

  def input_fn(params=None):  # pylint: disable=unused-argument
    return tf.data.Dataset.from_tensors(features)

  with tf.Graph().as_default():
    dataset = distill.with_teacher_targets(input_fn, targets)()
    batch = tf.data.make_one_shot_iterator(dataset).get_next()
    with tf.Session() as session:
      values = session.run(batch)
  np.testing.assert_array_equal(values[distill.TEACHER_INTENT], targets["intent"][[2, 0, 3]])
  np.testing.assert_array_equal(values[distill.TEACHER_SLOTS], targets["slots"][[2, 0, 3], :3])
  assert distill.with_teacher_targets(input_fn, None) is input_fn


def _task_losses(alpha, with_teacher, slot_crf=False):
  from bert_nlu.data.labels import LabelMaps  # pylint: disable=g-import-not-at-top
  from bert_nlu.tasks.nlu import NluTask  # pylint: disable=g-import-not-at-top
  label_maps = LabelMaps(intents=("a", "b", "c"), slot_tags=("O", "B-x", "I-x"))
  task = NluTask(label_maps, slot_crf=slot_crf, distill_temperature=2.0, distill_alpha=alpha)
  rng = np.random.RandomState(5)
  first_piece_mask = np.array([[0, 1, 0, 1, 1, 0], [0, 1, 1, 0, 0, 0]], np.int32)
  features = {
      "intent_id": np.array([1, 2], np.int32),
      "slot_ids": np.array([[0, 1, 2, 2, 0, 0], [0, 0, -1, 0, 0, 0]], np.int32),
      "first_piece_mask": first_piece_mask,
  }
  logits = {"intent_logits": rng.normal(size=(2, 3)).astype(np.float32),
            "slot_logits": rng.normal(size=(2, 6, 3)).astype(np.float32)}
  teacher_intent = _softmax(rng.normal(size=(2, 3))).astype(np.float32)
  teacher_slots = np.zeros((2, 3, 3), np.float32)
  teacher_slots[0] = _softmax(rng.normal(size=(3, 3)))
  teacher_slots[1, :2] = _softmax(rng.normal(size=(2, 3)))
  if with_teacher:
    features[distill.TEACHER_INTENT] = teacher_intent
    features[distill.TEACHER_SLOTS] = teacher_slots
  with tf.Graph().as_default(), tf.Session() as session:
    tensors = {k: tf.constant(v) for k, v in logits.items()}
    if slot_crf:
      tensors["slot_transitions"] = tf.zeros([3, 3])
    loss, parts = task.build_losses(tensors, {k: tf.constant(v) for k, v in features.items()})
    values = session.run({"loss": loss, **parts})
  return values, logits, features, teacher_intent, teacher_slots


def test_the_task_mixes_teacher_and_gold_terms_per_head():
  values, logits, features, teacher_intent, teacher_slots = _task_losses(0.4, True)
  temperature, alpha = 2.0, 0.4

  def mixed(z, gold, teacher, weights):
    hard = -np.log(_softmax(z))[np.arange(len(gold)), np.maximum(gold, 0)]
    soft = -(teacher * np.log(_softmax(z / temperature))).sum(-1)
    return (((1 - alpha) * hard + alpha * temperature ** 2 * soft) * weights).sum() / weights.sum()

  expected_intent = mixed(logits["intent_logits"], features["intent_id"], teacher_intent,
                          np.ones(2))
  # First pieces: row 0 positions 1, 3, 4 (tags 1, 2, 0); row 1 positions 1, 2 (tags 0, unseen).
  word_logits = np.concatenate([logits["slot_logits"][0, [1, 3, 4]],
                                logits["slot_logits"][1, [1, 2]]])
  word_teacher = np.concatenate([teacher_slots[0], teacher_slots[1, :2]])
  expected_slot = mixed(word_logits, np.array([1, 2, 0, 0, -1]), word_teacher,
                        np.array([1, 1, 1, 1, 0.0]))
  assert values["intent_loss"] == pytest.approx(expected_intent, rel=1e-5)
  assert values["slot_loss"] == pytest.approx(expected_slot, rel=1e-5)


@pytest.mark.parametrize("slot_crf", [False, True])
def test_alpha_zero_with_teacher_targets_is_the_plain_loss(slot_crf):
  distilled, *_ = _task_losses(0.0, True, slot_crf)
  plain, *_ = _task_losses(0.0, False, slot_crf)
  for name in ("loss", "intent_loss", "slot_loss"):
    assert distilled[name] == pytest.approx(plain[name], rel=1e-5), name
