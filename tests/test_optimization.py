"""bert_nlu.optimization: learning-rate schedules against their closed forms; gradient
accumulation and the update under tf.distribute replication; the fused update, with and without
Adam's bias correction, against a NumPy transcription of its formula.

Accumulation and replication are checked against the plain update of the whole batch on one
device: a tiny BertModel with a sentence classifier whose loss is a mean over examples (so a
batch's mean gradient is the mean of its halves' mean gradients), dropout off. Weights are compared
after several updates, with warmup and decay in the schedule, weight decay and clipping on.
"""

import math

import numpy as np
import pytest

from bert_nlu import optimization
from bert_nlu.compat import tf
from bert_nlu.testing import TINY_CLASSIFIER_SEQ_LENGTH as SEQ_LENGTH
from bert_nlu.testing import tiny_classifier_examples as _examples
from bert_nlu.testing import assert_same_trained_weights as _assert_same_weights
from bert_nlu.testing import tiny_classifier_initial_weights as _initial_weights
from bert_nlu.testing import tiny_classifier_loss as _classifier_loss

PEAK, TOTAL, WARMUP = 1e-3, 100, 10
STEPS = [0, 1, 5, 9, 10, 11, 30, 55, 99, 100, 150]


def _rates(schedule, warmup=WARMUP):
  with tf.Graph().as_default():
    step = tf.placeholder(tf.int64, [])
    rate = optimization.learning_rate_schedule(step, PEAK, TOTAL, warmup, schedule)
    with tf.Session() as session:
      return [session.run(rate, {step: s}) for s in STEPS]


def _closed_form(schedule, s, warmup=WARMUP):
  start = PEAK / 25 if schedule == "one_cycle" else 0.0
  if s < warmup:
    return start + (PEAK - start) * s / warmup
  if schedule == "linear":
    return PEAK * (1 - min(s, TOTAL) / TOTAL)
  end = PEAK / 25 / 1e4 if schedule == "one_cycle" else 0.0
  progress = min(1.0, (s - warmup) / (TOTAL - warmup))
  return end + (PEAK - end) * (1 + math.cos(math.pi * progress)) / 2


@pytest.mark.parametrize("schedule", optimization.LEARNING_RATE_SCHEDULES)
@pytest.mark.parametrize("warmup", [WARMUP, 0])
def test_schedules_match_their_closed_forms(schedule, warmup):
  expected = [_closed_form(schedule, s, warmup) for s in STEPS]
  np.testing.assert_allclose(_rates(schedule, warmup), expected, rtol=1e-5, atol=1e-9)  # float32 near 0


def test_hand_computed_points():
  linear, cosine, one_cycle = (_rates(name) for name in ("linear", "cosine", "one_cycle"))
  at = STEPS.index
  assert linear[at(5)] == pytest.approx(5e-4) and cosine[at(5)] == pytest.approx(5e-4)
  assert one_cycle[at(0)] == pytest.approx(4e-5)  # starts at peak / 25
  assert linear[at(10)] == pytest.approx(9e-4)  # bert's decay line from step 0
  assert cosine[at(10)] == pytest.approx(1e-3) and one_cycle[at(10)] == pytest.approx(1e-3)
  assert cosine[at(55)] == pytest.approx(5e-4)  # half way through the decay: cos(pi/2) = 0
  assert cosine[at(100)] == pytest.approx(0.0, abs=1e-12)
  assert one_cycle[at(150)] == pytest.approx(4e-9)  # ends at peak / 25 / 1e4


def test_unknown_schedule_is_refused():
  with tf.Graph().as_default(), pytest.raises(ValueError, match="step_decay"):
    optimization.learning_rate_schedule(tf.constant(1, tf.int64), PEAK, TOTAL, WARMUP,
                                        "step_decay")


def _set_weights(session, weights):
  for variable in tf.trainable_variables():
    variable.load(weights[variable.op.name], session)


def _train_with_accumulation(batches, accumulation_steps, implementation, weights,
                             dynamic_loss_scale=False, bias_correction=False):
  """Runs one train step per batch; returns the trainable weights by name."""
  num_steps = len(batches)
  with tf.Graph().as_default():
    ids = tf.placeholder(tf.int32, [None, SEQ_LENGTH])
    mask = tf.placeholder(tf.int32, [None, SEQ_LENGTH])
    labels = tf.placeholder(tf.int32, [None])
    loss = _classifier_loss(ids, mask, labels)
    train_op, _ = optimization.build_train_op(
        loss, 1e-2, num_train_steps=num_steps, num_warmup_steps=num_steps // 3 // accumulation_steps
        * accumulation_steps, weight_decay=0.01, clip_norm=1.0, implementation=implementation,
        dynamic_loss_scale=dynamic_loss_scale, gradient_accumulation_steps=accumulation_steps,
        bias_correction=bias_correction)
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      _set_weights(session, weights)
      for batch_ids, batch_mask, batch_labels in batches:
        session.run(train_op, {ids: batch_ids, mask: batch_mask, labels: batch_labels})
      assert session.run(tf.train.get_global_step()) == num_steps
      return {v.op.name: session.run(v) for v in tf.trainable_variables()}


def _split(examples, batch_size):
  ids, mask, labels = examples
  return [(ids[i:i + batch_size], mask[i:i + batch_size], labels[i:i + batch_size])
          for i in range(0, len(labels), batch_size)]


@pytest.mark.parametrize("implementation,dynamic_loss_scale,bias_correction",
                         [("fused", False, False), ("bert", False, False), ("fused", True, False),
                          ("fused", False, True)])
def test_accumulating_two_half_batches_updates_as_the_whole_batch(implementation,
                                                                  dynamic_loss_scale,
                                                                  bias_correction):
  """With bias correction this also checks that t counts updates, not batches."""
  examples = _examples(4 * 8)
  weights = _initial_weights()
  whole = _train_with_accumulation(_split(examples, 8), 1, implementation, weights,
                                   dynamic_loss_scale, bias_correction)
  accumulated = _train_with_accumulation(_split(examples, 4), 2, implementation, weights,
                                         dynamic_loss_scale, bias_correction)
  _assert_same_weights(whole, accumulated, weights)


def _quadratic_training(bias_correction, steps, peak, weight_decay,
                        epsilon=optimization.EPSILON, implementation="fused"):
  """Trains w on loss sum(a * w^2) / 2 (gradient a * w); returns w after each step."""
  with tf.Graph().as_default():
    w = tf.get_variable("w", initializer=tf.constant(QUADRATIC_START))
    loss = tf.reduce_sum(QUADRATIC_CURVATURE * tf.square(w)) / 2.0
    train_op, _ = optimization.build_train_op(
        loss, peak, num_train_steps=steps, num_warmup_steps=0, weight_decay=weight_decay,
        clip_norm=1e9, bias_correction=bias_correction, adam_epsilon=epsilon,
        implementation=implementation)
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      trajectory = []
      for _ in range(steps):
        session.run(train_op)
        trajectory.append(session.run(w))
      return np.array(trajectory)


QUADRATIC_START = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
QUADRATIC_CURVATURE = np.array([1.0, 0.5, 4.0, 0.01], np.float32)


def _reference_trajectory(bias_correction, steps, peak, weight_decay, eps=optimization.EPSILON):
  """The update rule, written out: decoupled decay, then Adam with or without bias correction."""
  b1, b2 = optimization.BETA_1, optimization.BETA_2
  w = QUADRATIC_START.astype(np.float64)
  m, v = np.zeros_like(w), np.zeros_like(w)
  trajectory = []
  for step in range(steps):
    rate = peak * (1 - step / steps)  # linear decay, no warmup
    gradient = QUADRATIC_CURVATURE * w
    m = b1 * m + (1 - b1) * gradient
    v = b2 * v + (1 - b2) * gradient ** 2
    t = step + 1
    corrected = rate * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) if bias_correction else rate
    w = w * (1 - rate * weight_decay) - corrected * m / (np.sqrt(v) + eps)
    trajectory.append(w.copy())
  return np.array(trajectory)


@pytest.mark.parametrize("bias_correction", [False, True])
def test_fused_update_follows_its_formula(bias_correction):
  steps, peak, weight_decay = 20, 0.05, 0.1
  np.testing.assert_allclose(_quadratic_training(bias_correction, steps, peak, weight_decay),
                             _reference_trajectory(bias_correction, steps, peak, weight_decay),
                             rtol=1e-4, atol=5e-5)  # float32 over 20 steps


@pytest.mark.parametrize("implementation,bias_correction",
                         [("fused", False), ("fused", True), ("bert", False)])
def test_adam_epsilon_is_the_one_in_the_formula(implementation, bias_correction):
  """A large epsilon (on the scale of the gradients) changes the trajectory, as the formula says."""
  steps, peak, weight_decay, epsilon = 10, 0.05, 0.1, 0.05
  trained = _quadratic_training(bias_correction, steps, peak, weight_decay, epsilon,
                                implementation)
  np.testing.assert_allclose(
      trained, _reference_trajectory(bias_correction, steps, peak, weight_decay, epsilon),
      rtol=1e-4, atol=5e-5)
  default = _reference_trajectory(bias_correction, steps, peak, weight_decay)
  assert np.abs(trained - default).max() > 1e-2


def test_first_update_with_and_without_bias_correction():
  """Update 1 of corrected Adam moves every weight by the rate (m / sqrt(v) = sign g); bert's rule
  moves it by (1 - b1) / sqrt(1 - b2) = 3.16 times that."""
  steps, peak = 30, 0.01
  corrected = _quadratic_training(True, steps, peak, 0.0)
  uncorrected = _quadratic_training(False, steps, peak, 0.0)
  gradient = np.abs(QUADRATIC_CURVATURE * QUADRATIC_START)
  root_v = np.sqrt(0.001) * gradient  # eps matters only where the gradient is small (the last)
  step_size = peak * 0.1 * gradient / (root_v + optimization.EPSILON)
  np.testing.assert_allclose(np.abs(corrected[0] - QUADRATIC_START),
                             step_size * np.sqrt(0.001) / 0.1, rtol=1e-4)
  np.testing.assert_allclose(np.abs(corrected[0] - QUADRATIC_START), peak, rtol=2e-3)
  np.testing.assert_allclose(np.abs(uncorrected[0] - QUADRATIC_START), step_size, rtol=1e-4)
  np.testing.assert_allclose(step_size[:3], peak * 0.1 / np.sqrt(0.001), rtol=1e-4)


def test_bias_correction_needs_the_fused_implementation():
  with tf.Graph().as_default(), pytest.raises(ValueError, match="bias correction"):
    w = tf.get_variable("w", initializer=tf.constant([1.0]))
    optimization.build_train_op(tf.reduce_sum(w), 0.1, 10, 0, implementation="bert",
                                bias_correction=True)


def test_accumulation_leaves_weights_alone_between_updates():
  examples = _examples(3 * 4)
  weights = _initial_weights()
  after_two = _train_with_accumulation(_split(examples, 4)[:2], 3, "fused", weights)
  for name, value in after_two.items():
    np.testing.assert_array_equal(value, weights[name], err_msg=name)


# The rate of each of 12 steps with K = 4: 3 updates, 1 of warmup (update 0 at the warmup's start,
# update 1 at the peak, decaying, update 2 half way down for cosine and one_cycle).
_ONE_CYCLE_END = 1 / 25 / 1e4
ACCUMULATED_SCHEDULE_RATES = {
    "linear": [0.0] * 4 + [2 / 3] * 4 + [1 / 3] * 4,
    "cosine": [0.0] * 4 + [1.0] * 4 + [0.5] * 4,
    "one_cycle": [1 / 25] * 4 + [1.0] * 4 + [_ONE_CYCLE_END + (1 - _ONE_CYCLE_END) / 2] * 4,
}


@pytest.mark.parametrize("schedule", optimization.LEARNING_RATE_SCHEDULES)
def test_accumulation_schedule_counts_updates(schedule):
  with tf.Graph().as_default():
    w = tf.get_variable("w", initializer=tf.constant([1.0]))
    _, learning_rate = optimization.build_train_op(
        tf.reduce_sum(w), 1.0, num_train_steps=12, num_warmup_steps=4,
        learning_rate_schedule_name=schedule, gradient_accumulation_steps=4)
    step = tf.train.get_or_create_global_step()
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      rates = []
      for value in range(12):
        step.load(value, session)
        rates.append(session.run(learning_rate))
  np.testing.assert_allclose(rates, ACCUMULATED_SCHEDULE_RATES[schedule], rtol=1e-6)
