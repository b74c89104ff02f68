"""bert_nlu.optimization: gradient accumulation and the update under tf.distribute replication.

Both are checked against the plain update of the whole batch on one device: a tiny BertModel with
a sentence classifier whose loss is a mean over examples (so a batch's mean gradient is the mean of
its halves' mean gradients), dropout off. Weights are compared after several updates, with warmup
and decay in the schedule, weight decay and clipping on.
"""

import numpy as np
import pytest

from bert_nlu import optimization
from bert_nlu.compat import tf
from bert_nlu.testing import TINY_CLASSIFIER_SEQ_LENGTH as SEQ_LENGTH
from bert_nlu.testing import tiny_classifier_examples as _examples
from bert_nlu.testing import assert_same_trained_weights as _assert_same_weights
from bert_nlu.testing import tiny_classifier_initial_weights as _initial_weights
from bert_nlu.testing import tiny_classifier_loss as _classifier_loss


def _set_weights(session, weights):
  for variable in tf.trainable_variables():
    variable.load(weights[variable.op.name], session)


def _train_with_accumulation(batches, accumulation_steps, implementation, weights,
                             dynamic_loss_scale=False):
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
        dynamic_loss_scale=dynamic_loss_scale, gradient_accumulation_steps=accumulation_steps)
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


@pytest.mark.parametrize("implementation,dynamic_loss_scale",
                         [("fused", False), ("bert", False), ("fused", True)])
def test_accumulating_two_half_batches_updates_as_the_whole_batch(implementation,
                                                                  dynamic_loss_scale):
  examples = _examples(4 * 8)
  weights = _initial_weights()
  whole = _train_with_accumulation(_split(examples, 8), 1, implementation, weights,
                                   dynamic_loss_scale)
  accumulated = _train_with_accumulation(_split(examples, 4), 2, implementation, weights,
                                         dynamic_loss_scale)
  _assert_same_weights(whole, accumulated, weights)


def test_accumulation_leaves_weights_alone_between_updates():
  examples = _examples(3 * 4)
  weights = _initial_weights()
  after_two = _train_with_accumulation(_split(examples, 4)[:2], 3, "fused", weights)
  for name, value in after_two.items():
    np.testing.assert_array_equal(value, weights[name], err_msg=name)


def test_accumulation_schedule_counts_updates():
  with tf.Graph().as_default():
    w = tf.get_variable("w", initializer=tf.constant([1.0]))
    _, learning_rate = optimization.build_train_op(
        tf.reduce_sum(w), 1.0, num_train_steps=12, num_warmup_steps=4,
        gradient_accumulation_steps=4)
    step = tf.train.get_or_create_global_step()
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      rates = []
      for value in range(12):
        step.load(value, session)
        rates.append(session.run(learning_rate))
  # 3 updates, 1 of warmup: update 0 at rate 0, update 1 at the peak decaying, update 2.
  np.testing.assert_allclose(rates, [0.0] * 4 + [2 / 3] * 4 + [1 / 3] * 4, rtol=1e-6)
