"""bert_nlu.optimization: gradient accumulation and the update under tf.distribute replication.

Both are checked against the plain update of the whole batch on one device: a tiny BertModel with
a sentence classifier whose loss is a mean over examples (so a batch's mean gradient is the mean of
its halves' mean gradients), dropout off. Weights are compared after several updates, with warmup
and decay in the schedule, weight decay and clipping on.
"""

import numpy as np
import pytest

from bert_nlu import encoder, optimization
from bert_nlu.compat import modeling, tf

NUM_LABELS = 3
SEQ_LENGTH = 6
VOCAB_SIZE = 20
# float32 sums in a different order (halves, replicas) differ in the last bits. Adam divides by
# sqrt(v) + 1e-6, so an element whose gradient cancels to ~1e-7 turns those bits into a visible
# difference: every element within 1e-4 (1% of one step at lr 1e-2), and per variable the mean
# difference within 1% of the mean change from the initial weights (+1e-7: the attention key bias
# has a zero gradient in exact arithmetic, so its "change" is rounding noise).
TOLERANCE = 1e-4
MEAN_RELATIVE_TOLERANCE = 1e-2


def _tiny_bert_config():
  return modeling.BertConfig(
      vocab_size=VOCAB_SIZE, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
      intermediate_size=32, hidden_act="gelu_exact", hidden_dropout_prob=0.0,
      attention_probs_dropout_prob=0.0, max_position_embeddings=16, type_vocab_size=2)


def _examples(num_examples, seed=0):
  """int32 input_ids / input_mask [n, SEQ_LENGTH] and labels [n] (varied lengths)."""
  rng = np.random.RandomState(seed)
  input_ids = rng.randint(5, VOCAB_SIZE, size=(num_examples, SEQ_LENGTH)).astype(np.int32)
  lengths = rng.randint(2, SEQ_LENGTH + 1, size=num_examples)
  input_mask = (np.arange(SEQ_LENGTH)[None, :] < lengths[:, None]).astype(np.int32)
  labels = rng.randint(0, NUM_LABELS, size=num_examples).astype(np.int32)
  return input_ids * input_mask, input_mask, labels


def _classifier_loss(input_ids, input_mask, labels):
  """Mean softmax cross-entropy over examples of a pooled-output classifier on a tiny BERT."""
  bert = encoder.build_bert_model(_tiny_bert_config(), is_training=True, input_ids=input_ids,
                                  input_mask=input_mask, segment_ids=tf.zeros_like(input_ids))
  logits = tf.layers.dense(bert.get_pooled_output(), NUM_LABELS,
                           kernel_initializer=tf.truncated_normal_initializer(stddev=0.02),
                           name="classifier")
  return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                                       logits=logits))


def _initial_weights():
  """Fixed initial values for every variable of the tiny model, by name."""
  with tf.Graph().as_default():
    tf.set_random_seed(3)
    ids, mask, labels = (tf.zeros([1, SEQ_LENGTH], tf.int32), tf.ones([1, SEQ_LENGTH], tf.int32),
                         tf.zeros([1], tf.int32))
    _classifier_loss(ids, mask, labels)
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      return {v.op.name: session.run(v) for v in tf.trainable_variables()}


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


def _assert_same_weights(expected, actual, initial):
  assert sorted(expected) == sorted(actual)
  moved = max(np.max(np.abs(expected[name] - initial[name])) for name in expected)
  assert moved > 1e-3  # the comparison is between trained weights, not initial ones
  for name in expected:
    np.testing.assert_allclose(actual[name], expected[name], atol=TOLERANCE, rtol=0,
                               err_msg=name)
    change = np.mean(np.abs(expected[name] - initial[name]))
    assert np.mean(np.abs(actual[name] - expected[name])) <= MEAN_RELATIVE_TOLERANCE * change + 1e-7, name


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
