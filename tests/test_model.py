"""model_fn variants: head learning-rate multiplier, layer-wise learning-rate decay, weight
averaging, intent context for the slot head, losses, the factored (bio_type) slot head."""

import json

import numpy as np
import pytest

from bert_nlu import encoder, ensemble, hooks, metrics, optimization, testing, train
from bert_nlu.compat import tf
from bert_nlu.data.labels import LabelMaps
from bert_nlu.predict import NluPredictor
from bert_nlu.tasks.nlu import NluTask, multilabel_intent_loss

LABELS = LabelMaps.from_labels(["a", "b", "c"], [["O", "B-x", "I-x"]])


def _features(batch=4, seq=6):
  rng = np.random.RandomState(0)
  input_ids = rng.randint(5, 25, size=[batch, seq]).astype(np.int32)
  first = np.zeros([batch, seq], np.int32)
  first[:, 1:seq - 1] = 1
  return {
      "input_ids": tf.constant(input_ids), "input_mask": tf.ones([batch, seq], tf.int32),
      "segment_ids": tf.zeros([batch, seq], tf.int32),
      "first_piece_mask": tf.constant(first),
      "slot_ids": tf.constant(rng.randint(0, 3, size=[batch, seq]).astype(np.int32)),
      "intent_id": tf.constant(np.array([0, 1, 2, -1], np.int32)),
  }


def _task_logits(tiny_bert_dir, task):
  """`task`'s logits on a tiny BertModel of `_features()`, in the current graph.

  Returns:
    (logits, features, bert_config).
  """
  bert_config = encoder.load_bert_config(f"{tiny_bert_dir}/bert_config.json")
  features = _features()
  bert = encoder.build_bert_model(bert_config, False, features["input_ids"],
                                  features["input_mask"], features["segment_ids"])
  logits = task.build_logits(bert.get_pooled_output(), bert.get_sequence_output(), False, 0.1,
                             0.02)
  return logits, features, bert_config


def _build(tiny_bert_dir, slot_intent_context=False):
  task = NluTask(LABELS, 1.0, slot_intent_context)
  logits, features, _ = _task_logits(tiny_bert_dir, task)
  return task, logits, features


_HEAD_KERNEL = "slot_head/dense/kernel"
_BODY_KERNEL = "bert/encoder/layer_0/intermediate/dense/kernel"


def _max_update(tiny_bert_dir, multiplier, layer_decay=1.0,
                names=(_HEAD_KERNEL, _BODY_KERNEL)):
  """Largest change of each named variable in one training step, and the global step after."""
  with tf.Graph().as_default():
    tf.set_random_seed(0)
    task, logits, features = _build(tiny_bert_dir)
    loss, _ = task.build_losses(logits, features)
    train_op, _ = optimization.build_train_op(loss, 1e-3, 10, 0, weight_decay=0.0,
                                              head_learning_rate_multiplier=multiplier,
                                              layer_learning_rate_decay=layer_decay)
    variables = [[v for v in tf.trainable_variables() if v.name.startswith(name)][0]
                 for name in names]
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      before = session.run(variables)
      session.run(train_op)
      after = session.run(variables)
      step = session.run(tf.train.get_global_step())
  return [np.abs(a - b).max() for a, b in zip(after, before)], step


def test_head_learning_rate_multiplier_scales_only_the_heads(tiny_bert_dir):
  (head_1, body_1), step = _max_update(tiny_bert_dir, 1.0)
  (head_10, body_10), _ = _max_update(tiny_bert_dir, 10.0)
  assert step == 1
  # bert's AdamWeightDecay has no bias correction: its first step moves a weight by
  # lr * 0.1 / sqrt(0.001) = 3.16 * lr, whatever the gradient's size.
  assert head_1 == pytest.approx(3.162e-3, rel=0.01)
  assert body_1 == pytest.approx(3.162e-3, rel=0.1)  # epsilon shrinks tiny-gradient steps
  assert head_10 == pytest.approx(10 * head_1, rel=0.01)
  assert body_10 == pytest.approx(body_1, rel=1e-4)


def test_layer_learning_rate_factor_decays_from_the_top_layer_down():
  factor = optimization.layer_learning_rate_factor
  assert factor("bert/encoder/layer_5/output/dense/kernel", 6, 0.5) == 0.5
  assert factor("bert/encoder/layer_0/attention/self/query/bias", 6, 0.5) == 0.5 ** 6
  assert factor("bert/embeddings/word_embeddings", 6, 0.5) == 0.5 ** 7
  assert factor("bert/pooler/dense/kernel", 6, 0.5) == 1.0
  assert factor("bert/encoder/layer_11/output/dense/kernel", 12, 0.9) == pytest.approx(0.9)
  assert factor("bert/encoder/layer_0/output/dense/kernel", 6, 1.0) == 1.0


def test_layer_learning_rate_decay_slows_each_layer_by_its_depth(tiny_bert_dir):
  names = (_HEAD_KERNEL, "bert/pooler/dense/kernel",
           "bert/encoder/layer_1/attention/self/query/kernel",
           "bert/encoder/layer_0/attention/self/query/kernel",
           "bert/embeddings/position_embeddings")
  plain, _ = _max_update(tiny_bert_dir, 1.0, names=names)
  decayed, step = _max_update(tiny_bert_dir, 1.0, layer_decay=0.5, names=names)
  assert step == 1
  # The tiny encoder has 2 layers: heads and pooler x1, layer_1 x0.5, layer_0 x0.25, embeddings
  # x0.125 of the same first step (bert's Adam moves a weight by ~3.16 * rate on its first step).
  for move, base, expected in zip(decayed, plain, (1.0, 1.0, 0.5, 0.25, 0.125)):
    assert move == pytest.approx(expected * base, rel=1e-4)


def test_weight_average_tracks_the_weights_with_a_warming_up_decay(tiny_bert_dir):
  with tf.Graph().as_default():
    tf.set_random_seed(0)
    task, logits, features = _build(tiny_bert_dir)
    loss, _ = task.build_losses(logits, features)
    train_op, _ = optimization.build_train_op(loss, 1e-3, 10, 0, weight_average_decay=0.9)
    trainable = tf.trainable_variables()
    variable = [v for v in trainable if v.name.startswith(_HEAD_KERNEL)][0]
    average = [v for v in tf.global_variables()
               if v.name == _HEAD_KERNEL + "/ExponentialMovingAverage:0"][0]
    averaged = {v.name for v in tf.global_variables() if "ExponentialMovingAverage" in v.name}
    assert len(averaged) == len(trainable)
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      expected = session.run(variable)
      np.testing.assert_array_equal(session.run(average), expected)  # starts at the weights
      for step in range(1, 4):
        session.run(train_op)
        rate = min(0.9, step / (9.0 + step))  # (1 + updates so far) / (10 + updates so far)
        weights = session.run(variable)
        expected = rate * expected + (1 - rate) * weights
        np.testing.assert_allclose(session.run(average), expected, rtol=1e-5, atol=1e-7)
      assert np.abs(weights - expected).max() > 1e-4  # the average lags the weights


def test_slot_intent_context_widens_the_slot_head(tiny_bert_dir):
  for context, width in ((False, 32), (True, 64)):
    with tf.Graph().as_default():
      _, logits, _ = _build(tiny_bert_dir, slot_intent_context=context)
      kernel = [v for v in tf.global_variables() if v.name == "slot_head/dense/kernel:0"][0]
      assert kernel.shape.as_list() == [width, 3]
      assert logits["slot_logits"].shape.as_list() == [4, 6, 3]


def test_losses_ignore_unknown_intents_and_non_first_pieces(tiny_bert_dir):
  with tf.Graph().as_default():
    task, _, features = _build(tiny_bert_dir)
    intent_logits = tf.constant(np.log(np.array(
        [[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.25, 0.25, 0.5], [1e-9, 1e-9, 1.0]], np.float32)))
    slot_logits = tf.zeros([4, 6, 3])  # uniform: every scored position costs log(3)
    loss, parts = task.build_losses({"intent_logits": intent_logits, "slot_logits": slot_logits},
                                    features)
    with tf.Session() as session:
      values = session.run(parts)
  # The 4th example's intent is unknown (-1): excluded, so the mean is over 3 examples of -log .5.
  assert values["intent_loss"] == pytest.approx(-np.log(0.5), rel=1e-5)
  assert values["slot_loss"] == pytest.approx(np.log(3.0), rel=1e-5)


def test_softmax_slot_loss_is_the_mean_over_first_pieces_of_seen_tags():
  # [CLS] w1 w2 ##w2 ##w2 w3 [SEP] ; [CLS] w1 ##w1 w2 [SEP] pad pad ; [CLS] w1 w2 w3 w4 [SEP] pad
  first_piece_mask = np.array([[0, 1, 1, 0, 0, 1, 0],
                               [0, 1, 0, 1, 0, 0, 0],
                               [0, 1, 1, 1, 1, 0, 0]], np.int32)
  # As features.convert_example writes them: 0 off first pieces, -1 for a tag unseen in training
  # (row 0's w3 and row 2's w2).
  slot_ids = np.array([[0, 1, 2, 0, 0, -1, 0],
                       [0, 2, 0, 0, 0, 0, 0],
                       [0, 0, -1, 1, 2, 0, 0]], np.int32)
  rng = np.random.RandomState(3)
  slot_logits = (3.0 * rng.randn(3, 7, len(LABELS.slot_tags))).astype(np.float32)
  intent_logits = rng.randn(3, len(LABELS.intents)).astype(np.float32)
  with tf.Graph().as_default(), tf.Session() as session:
    _, parts = NluTask(LABELS).build_losses(
        {"intent_logits": tf.constant(intent_logits), "slot_logits": tf.constant(slot_logits)},
        {"intent_id": tf.constant([0, 1, 2]), "slot_ids": tf.constant(slot_ids),
         "first_piece_mask": tf.constant(first_piece_mask)})
    slot_loss = session.run(parts["slot_loss"])
  log_probabilities = slot_logits - np.log(np.exp(slot_logits).sum(-1, keepdims=True))
  scored = [(b, i) for b in range(3) for i in range(7)
            if first_piece_mask[b, i] and slot_ids[b, i] >= 0]
  assert len(scored) == 7  # of 9 words (2 unseen tags) and 17 positions
  expected = -np.mean([log_probabilities[b, i, slot_ids[b, i]] for b, i in scored])
  assert slot_loss == pytest.approx(expected, rel=1e-5)
  # Both masks matter at these logits: scoring unseen tags as tag 0, or pieces after the first,
  # gives another loss.
  with_unseen = -np.mean([log_probabilities[b, i, max(slot_ids[b, i], 0)]
                          for b in range(3) for i in range(7) if first_piece_mask[b, i]])
  with_later_pieces = -np.mean([log_probabilities[b, i, slot_ids[b, i]]
                                for b in range(3) for i in range(7) if slot_ids[b, i] >= 0])
  assert min(abs(with_unseen - expected), abs(with_later_pieces - expected)) > 0.1
def _numpy_binary_cross_entropy(logits, targets):
  """Sum over intents of -[y log p + (1 - y) log(1 - p)], mean over examples (float64)."""
  probabilities = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
  return (-(targets * np.log(probabilities)
            + (1 - targets) * np.log(1 - probabilities)).sum(axis=1)).mean()


def test_multilabel_intent_loss_is_binary_cross_entropy_per_intent():
  logits = np.random.RandomState(0).randn(3, 4).astype(np.float32)
  intent_ids = np.array([[0, 2], [1, -1], [-1, -1]], np.int32)  # {0, 2}, {1}, {} (unknown)
  targets = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
  with tf.Graph().as_default():
    loss = multilabel_intent_loss(tf.constant(logits), tf.constant(intent_ids))
    with tf.Session() as session:
      assert session.run(loss) == pytest.approx(_numpy_binary_cross_entropy(logits, targets),
                                                rel=1e-5)


def test_multilabel_task_uses_the_sigmoid_loss_and_probabilities():
  labels = LabelMaps.from_labels(["a", "b#c"], [["O", "B-x", "I-x"]], multilabel=True)
  logits = np.array([[2.0, -1.0, 0.0], [0.5, 1.0, -2.0]], np.float32)
  intent_ids = np.array([[0, -1], [1, 2]], np.int32)  # {a}, {b, c}
  with tf.Graph().as_default():
    features = {"intent_ids": tf.constant(intent_ids),
                "slot_ids": tf.zeros([2, 3], tf.int32),
                "first_piece_mask": tf.constant([[0, 1, 0], [0, 1, 0]])}
    task_logits = {"intent_logits": tf.constant(logits), "slot_logits": tf.zeros([2, 3, 3])}
    task = NluTask(labels)
    _, parts = task.build_losses(task_logits, features)
    predictions = task.build_predictions(task_logits, features)
    with tf.Session() as session:
      values, probabilities = session.run([parts, predictions["intent_probabilities"]])
  assert probabilities == pytest.approx(1 / (1 + np.exp(-logits.astype(np.float64))), rel=1e-5)
  targets = np.array([[1, 0, 0], [0, 1, 1]])
  assert values["intent_loss"] == pytest.approx(_numpy_binary_cross_entropy(logits, targets),
                                                rel=1e-5)


def _train_steps(tiny_bert_dir, implementation, steps=3):
  with tf.Graph().as_default():
    tf.set_random_seed(0)
    task, logits, features = _build(tiny_bert_dir)
    loss, _ = task.build_losses(logits, features)
    train_op, _ = optimization.build_train_op(loss, 1e-3, 10, 2, weight_decay=0.01,
                                              head_learning_rate_multiplier=3.0,
                                              implementation=implementation)
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      for _ in range(steps):
        session.run(train_op)
      return {v.name: value for v, value in
              zip(tf.global_variables(), session.run(tf.global_variables()))}


def test_fused_optimizer_matches_bert_adam_weight_decay(tiny_bert_dir):
  fused = _train_steps(tiny_bert_dir, "fused")
  reference = _train_steps(tiny_bert_dir, "bert")
  assert set(fused) == set(reference)  # same variables, slots named like bert's (adam_m/adam_v)
  assert any(name.endswith("/adam_m:0") for name in fused)
  for name, value in reference.items():
    # float32 rounding of the fused kernel: <= 1e-6 absolute after 3 steps of ~3e-3 each.
    np.testing.assert_allclose(fused[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
  with pytest.raises(ValueError, match="implementation"):
    _train_steps(tiny_bert_dir, "sgd", steps=0)


@pytest.mark.parametrize("encoder_dropout, deterministic", [(0.0, True), (0.5, False)])
def test_encoder_dropout_overrides_the_checkpoint_config(tiny_bert_dir, encoder_dropout,
                                                         deterministic):
  bert_config = encoder.load_bert_config(f"{tiny_bert_dir}/bert_config.json")
  with tf.Graph().as_default():
    features = _features()
    bert = encoder.build_bert_model(bert_config, True, features["input_ids"],
                                    features["input_mask"], features["segment_ids"],
                                    encoder_dropout=encoder_dropout)
    output = bert.get_sequence_output()
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      first, second = session.run(output), session.run(output)
  assert np.array_equal(first, second) == deterministic
  with pytest.raises(ValueError, match="encoder_dropout"):
    encoder.build_bert_model(bert_config, True, features["input_ids"], features["input_mask"],
                             features["segment_ids"], encoder_dropout=1.0)


def test_session_config_sets_thread_pools_only_when_asked():
  from bert_nlu import model  # pylint: disable=g-import-not-at-top
  from bert_nlu.config import ModelConfig  # pylint: disable=g-import-not-at-top
  plain = ModelConfig(bert_config_file="c", vocab_file="v", init_checkpoint="i")
  assert model.session_config(plain) is None
  threaded = model.session_config(plain, intra_op_threads=1, inter_op_threads=2)
  assert threaded.intra_op_parallelism_threads == 1
  assert threaded.inter_op_parallelism_threads == 2
  fp16 = ModelConfig(bert_config_file="c", vocab_file="v", init_checkpoint="i", fp16=True)
  both = model.session_config(fp16, intra_op_threads=1)
  assert both.intra_op_parallelism_threads == 1
  assert both.graph_options.rewrite_options.auto_mixed_precision == 1  # RewriterConfig.ON


def _expected_parameters(config, layers, num_intents, num_tags, slot_input_width,
                         train_layers_from=0):
  """BERT's weights counted from its config by hand, plus the two dense heads:
  (all, trainable when the embeddings and layers below train_layers_from are frozen)."""
  hidden, intermediate = config["hidden_size"], config["intermediate_size"]
  embeddings = ((config["vocab_size"] + config["max_position_embeddings"]
                 + config["type_vocab_size"]) * hidden + 2 * hidden)  # tables + LayerNorm
  layer = (4 * (hidden * hidden + hidden)  # query, key, value, attention output
           + (hidden * intermediate + intermediate) + (intermediate * hidden + hidden)
           + 2 * 2 * hidden)  # two LayerNorms
  pooler = hidden * hidden + hidden
  heads = (hidden * num_intents + num_intents) + (slot_input_width * num_tags + num_tags)
  total = embeddings + layers * layer + pooler + heads
  frozen = (embeddings + train_layers_from * layer) if train_layers_from else 0
  return total, total - frozen


@pytest.mark.parametrize("layers, slot_intent_context, train_layers_from",
                         [(None, False, 0), (1, True, 0), (None, False, 1), (1, False, 1)])
def test_parameter_counts_match_the_config(tiny_bert_dir, layers, slot_intent_context,
                                           train_layers_from):
  import json  # pylint: disable=g-import-not-at-top
  from bert_nlu import config as config_lib, model  # pylint: disable=g-import-not-at-top
  with open(f"{tiny_bert_dir}/bert_config.json") as f:
    raw_config = json.load(f)
  bert_config = encoder.load_bert_config(f"{tiny_bert_dir}/bert_config.json")
  model_config = config_lib.ModelConfig("", "", "", num_hidden_layers=layers,
                                        train_layers_from=train_layers_from)
  counts = model.parameter_counts(NluTask(LABELS, 1.0, slot_intent_context), bert_config,
                                  model_config)
  hidden = raw_config["hidden_size"]
  total, trainable = _expected_parameters(
      raw_config, layers or raw_config["num_hidden_layers"], 3, 3,
      2 * hidden if slot_intent_context else hidden, train_layers_from)
  assert counts == {"parameters": total, "trainable_parameters": trainable}
  assert (trainable < total) == (train_layers_from > 0)


def _train_through_model_fn(tiny_bert_dir, model_fields, train_fields, steps=3, seed=1):
  """Runs `steps` training steps of model_fn's TRAIN graph (warm-started from the tiny
  checkpoint); returns ({name: value} before, {name: value} after, names of all variables)."""
  from bert_nlu import config as config_lib, model  # pylint: disable=g-import-not-at-top
  bert_config = encoder.load_bert_config(f"{tiny_bert_dir}/bert_config.json")
  model_config = config_lib.ModelConfig(
      f"{tiny_bert_dir}/bert_config.json", f"{tiny_bert_dir}/vocab.txt",
      f"{tiny_bert_dir}/bert_model.ckpt", head_dropout=0.0, encoder_dropout=0.0, **model_fields)
  train_config = config_lib.TrainConfig(learning_rate=1e-2, **train_fields)
  with tf.Graph().as_default():
    tf.set_random_seed(seed)  # the tiny checkpoint was made with seed 0: its init is the same
    tf.train.get_or_create_global_step()
    model_fn = model.model_fn_builder(NluTask(LABELS), bert_config, model_config, train_config,
                                      num_train_steps=10, num_warmup_steps=0)
    spec = model_fn(_features(), None, tf.estimator.ModeKeys.TRAIN, {})
    network = [v for v in tf.global_variables()
               if v.name.startswith(("bert/", "intent_head/", "slot_head/"))
               and not any(part in v.name for part in ("/adam_", "ExponentialMovingAverage",
                                                       "gradient_accumulator"))]
    names = sorted(v.name.split(":")[0] for v in tf.global_variables())
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      before = dict(zip([v.name.split(":")[0] for v in network], session.run(network)))
      for _ in range(steps):
        session.run(spec.train_op)
      after = dict(zip([v.name.split(":")[0] for v in network], session.run(network)))
  return before, after, names


@pytest.mark.parametrize("train_layers_from, train_fields", [
    (1, dict(optimizer_implementation="fused", layer_learning_rate_decay=0.5)),
    (1, dict(optimizer_implementation="bert")),
    (2, dict(optimizer_implementation="fused", weight_average_decay=0.9)),
    (1, dict(optimizer_implementation="fused", gradient_accumulation_steps=2)),  # no accumulator
])
def test_frozen_layers_stay_bit_identical_and_have_no_optimizer_state(
    tiny_bert_dir, train_layers_from, train_fields):
  before, after, names = _train_through_model_fn(
      tiny_bert_dir, dict(train_layers_from=train_layers_from), train_fields)
  frozen = [n for n in before if n.startswith("bert/embeddings/")
            or any(n.startswith(f"bert/encoder/layer_{i}/") for i in range(train_layers_from))]
  trained = [n for n in before if n not in frozen]
  assert frozen and any(n.startswith("bert/pooler/") for n in trained)
  assert any(n.startswith("bert/encoder/") for n in trained) == (train_layers_from < 2)
  checkpoint = tf.train.load_checkpoint(f"{tiny_bert_dir}/bert_model.ckpt")
  for name in frozen:
    np.testing.assert_array_equal(before[name], checkpoint.get_tensor(name))  # warm-started
    np.testing.assert_array_equal(after[name], before[name])
    assert not [n for n in names if n.startswith(name + "/")], f"{name} has optimizer state"
  for name in trained:
    if "LayerNorm" not in name:  # gamma/beta of a 2-layer model may move very little
      assert np.abs(after[name] - before[name]).max() > 0, f"{name} did not train"
    assert f"{name}/adam_m" in names and f"{name}/adam_v" in names
    if train_fields.get("gradient_accumulation_steps", 1) > 1:
      assert f"{name}/gradient_accumulator" in names



def test_random_init_differs_from_the_checkpoint_at_step_zero(tiny_bert_dir):
  checkpoint = tf.train.load_checkpoint(f"{tiny_bert_dir}/bert_model.ckpt")
  warm, _, _ = _train_through_model_fn(tiny_bert_dir, {}, {}, steps=0)
  cold, _, _ = _train_through_model_fn(tiny_bert_dir, dict(random_init=True), {}, steps=0)
  encoder_names = [n for n in warm if n.startswith("bert/") and "LayerNorm" not in n
                   and not n.endswith("bias")]  # LayerNorm and biases start at constants
  assert encoder_names
  for name in encoder_names:
    np.testing.assert_array_equal(warm[name], checkpoint.get_tensor(name))
    assert np.abs(cold[name] - checkpoint.get_tensor(name)).max() > 1e-3, name


def _log_softmax(logits):
  shifted = logits - logits.max(axis=-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


_RNG = np.random.RandomState(3)
_LOGITS = (_RNG.randn(5, 4, 3) * 3).astype(np.float32)  # [batch, seq, classes]
_LABELS = _RNG.randint(0, 3, size=[5, 4]).astype(np.int32)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_loss_matches_numpy_and_is_cross_entropy_at_gamma_zero(gamma):
  from bert_nlu.tasks import nlu  # pylint: disable=g-import-not-at-top
  log_p = np.take_along_axis(_log_softmax(_LOGITS.astype(np.float64)), _LABELS[..., None],
                             axis=-1)[..., 0]
  expected = -((1.0 - np.exp(log_p)) ** gamma) * log_p
  with tf.Graph().as_default():
    focal = nlu.focal_cross_entropy(tf.constant(_LABELS), tf.constant(_LOGITS), gamma)
    xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=_LABELS, logits=_LOGITS)
    with tf.Session() as session:
      focal_value, xent_value = session.run([focal, xent])
  np.testing.assert_allclose(focal_value, expected, rtol=1e-5, atol=1e-7)
  if gamma == 0:
    np.testing.assert_array_equal(focal_value, xent_value)


def test_focal_loss_gradient_stays_finite_on_certain_predictions():
  from bert_nlu.tasks import nlu  # pylint: disable=g-import-not-at-top
  with tf.Graph().as_default():
    logits = tf.constant([[100.0, -100.0, 0.0], [0.0, 1.0, 2.0]])
    loss = tf.reduce_sum(nlu.focal_cross_entropy(tf.constant([0, 2]), logits, 0.5))
    with tf.Session() as session:
      gradient = session.run(tf.gradients(loss, logits)[0])
  assert np.all(np.isfinite(gradient))


def test_slot_loss_normalization_by_token_and_by_sentence():
  from bert_nlu.tasks import nlu  # pylint: disable=g-import-not-at-top
  losses = np.array([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0], [7.0, 7.0, 7.0]], np.float32)
  weights = np.array([[1, 1, 1], [1, 0, 0], [0, 0, 0]], np.float32)  # 3 words, 1 word, none
  with tf.Graph().as_default():
    token, sentence = (nlu.normalized_slot_loss(tf.constant(losses), tf.constant(weights), mode)
                       for mode in nlu.SLOT_LOSS_NORMALIZATIONS)
    with tf.Session() as session:
      token_value, sentence_value = session.run([token, sentence])
  assert token_value == pytest.approx((1 + 2 + 3 + 4) / 4)
  assert sentence_value == pytest.approx(((1 + 2 + 3) / 3 + 4) / 2)  # the empty row is left out


@pytest.mark.parametrize("slot_crf", [False, True])
def test_sentence_normalization_is_the_mean_of_each_sentence_alone(slot_crf):
  """The batch's "sentence" loss equals the mean of each row's loss computed on its own."""
  first = np.array([[1, 1, 1, 0], [1, 0, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1], [0, 1, 1, 0]],
                   np.int32)
  with tf.Graph().as_default():
    logits = {"intent_logits": tf.constant(_LOGITS[:, 0]), "slot_logits": tf.constant(_LOGITS)}
    features = {"intent_id": tf.constant(_LABELS[:, 0]), "slot_ids": tf.constant(_LABELS),
                "first_piece_mask": tf.constant(first)}
    if slot_crf:
      logits["slot_transitions"] = tf.constant(_RNG.randn(3, 3).astype(np.float32))
    sentence_task = NluTask(LABELS, slot_crf=slot_crf, slot_loss_normalization="sentence")
    token_task = NluTask(LABELS, slot_crf=slot_crf)
    _, sentence_parts = sentence_task.build_losses(logits, features)
    _, token_parts = token_task.build_losses(logits, features)
    rows = [token_task.build_losses({k: v if k == "slot_transitions" else v[i:i + 1]
                                     for k, v in logits.items()},
                                    {k: v[i:i + 1] for k, v in features.items()})[1]["slot_loss"]
            for i in range(5)]
    with tf.Session() as session:
      sentence_value, token_value, row_values = session.run(
          [sentence_parts["slot_loss"], token_parts["slot_loss"], rows])
  assert sentence_value == pytest.approx(np.mean(row_values), rel=1e-5)
  assert abs(sentence_value - token_value) > 1e-3  # rows of 3, 2, 1, 4, 2 words weigh differently


def test_per_intent_slot_heads_route_the_loss_through_the_gold_intent():
  """Training: the gold intent's head (the predicted one's where gold is unknown); prediction:
  the predicted intent's head. Checked against numpy and by which head gets gradient."""
  rng = np.random.RandomState(5)
  per_intent = rng.randn(4, 6, 3, 3).astype(np.float32)  # [batch, seq, intents, tags]
  intent_logits = np.array([[3, 0, 0], [0, 0, 3], [0, 3, 0], [0, 3, 0]], np.float32)
  predicted = intent_logits.argmax(-1)  # 0, 2, 1, 1
  with tf.Graph().as_default():
    features = _features()  # gold intents 0, 1, 2, unknown
    per_intent_tensor = tf.constant(per_intent)
    logits = {"intent_logits": tf.constant(intent_logits),
              "slot_logits_per_intent": per_intent_tensor}
    from bert_nlu.tasks import nlu  # pylint: disable=g-import-not-at-top
    logits["slot_logits"] = nlu.route_slot_logits(per_intent_tensor, tf.constant(predicted))
    task = NluTask(LABELS, per_intent_slot_heads=True)
    _, parts = task.build_losses(logits, features)
    predictions = task.build_predictions(logits, features)
    gradient = tf.gradients(parts["slot_loss"], per_intent_tensor)[0]
    with tf.Session() as session:
      slot_loss, slot_ids, gradient, gold, first, slot_tags = session.run(
          [parts["slot_loss"], predictions["slot_ids"], gradient, features["intent_id"],
           features["first_piece_mask"], features["slot_ids"]])
  routed = np.where(gold >= 0, gold, predicted)  # 0, 1, 2, then predicted 1
  rows = per_intent[np.arange(4), :, routed]  # [batch, seq, tags]
  log_p = np.take_along_axis(_log_softmax(rows), slot_tags[..., None], axis=-1)[..., 0]
  assert slot_loss == pytest.approx(-(log_p * first).sum() / first.sum(), rel=1e-5)
  for example, head in enumerate(routed):
    others = [h for h in range(3) if h != head]
    assert np.abs(gradient[example, :, head]).max() > 0
    assert np.abs(gradient[example, :, others]).max() == 0
  expected_ids = per_intent[np.arange(4), :, predicted].argmax(-1)
  np.testing.assert_array_equal(slot_ids, expected_ids)


def test_per_intent_slot_heads_build_one_layer_per_intent(tiny_bert_dir):
  with tf.Graph().as_default():
    logits, _, bert_config = _task_logits(tiny_bert_dir,
                                          NluTask(LABELS, per_intent_slot_heads=True))
    kernel = [v for v in tf.global_variables() if v.name.startswith("slot_head/")][0]
    assert kernel.shape.as_list() == [bert_config.hidden_size, 3 * 3]
    assert logits["slot_logits_per_intent"].shape.as_list()[2:] == [3, 3]
    assert logits["slot_logits"].shape.as_list()[-1] == 3


# The factored slot head (slot_head="bio_type"). Tags: "city" is never I- in training.
BIO_LABELS = LabelMaps.from_labels(["a", "b"], [["O", "B-artist", "I-artist", "B-city"]])
# Word pieces of 2 rows: [CLS] w w ## w [SEP] / [CLS] w ## ## [SEP] pad.
_BIO_FIRST = np.array([[0, 1, 1, 0, 1, 0], [0, 1, 0, 0, 0, 0]], np.int32)
# Gold tags (ids of O, B-artist, B-city, I-artist = 0..3): row 0's words O, B-artist (2 pieces) and
# a tag unseen in training (-1); row 1's one word I-artist (3 pieces); the tags at other pieces
# must not count.
_BIO_TAGS = np.array([[2, 0, 1, 3, -1, 1], [1, 3, 0, 2, 1, 0]], np.int32)


def _bio_logits(seed=11):
  rng = np.random.RandomState(seed)
  return ((rng.randn(2, 6, 3) * 2).astype(np.float32),  # [batch, seq, O/B/I]
          (rng.randn(2, 6, 2) * 2).astype(np.float32))  # [batch, seq, artist/city]


def _bio_loss_numpy(position_logits, type_logits, gamma, normalization):
  bio = BIO_LABELS.bio
  def focal(logits, labels):
    log_p = np.take_along_axis(_log_softmax(logits.astype(np.float64)), labels[..., None],
                               axis=-1)[..., 0]
    return -((1.0 - np.exp(log_p)) ** gamma) * log_p
  counted = (_BIO_FIRST == 1) & (_BIO_TAGS >= 0)
  tags = np.maximum(_BIO_TAGS, 0)
  positions = np.array(bio.tag_positions)[tags]
  types = np.maximum(np.array(bio.tag_types)[tags], 0)
  def normalize(losses, weights):
    if normalization == "token":
      return (losses * weights).sum() / weights.sum()
    rows = [(l * w).sum() / w.sum() for l, w in zip(losses, weights) if w.sum()]
    return np.mean(rows)
  return (normalize(focal(position_logits, positions), counted),
          normalize(focal(type_logits, types), counted & (positions > 0)))


@pytest.mark.parametrize("gamma, normalization", [(0.0, "token"), (0.0, "sentence"),
                                                  (2.0, "token")])
def test_bio_type_slot_loss_is_position_and_type_cross_entropy_over_words(gamma, normalization):
  position_logits, type_logits = _bio_logits()
  intent_logits = np.array([[1.0, -1.0], [0.5, 2.0]], np.float32)
  with tf.Graph().as_default():
    task = NluTask(BIO_LABELS, focal_gamma=gamma, slot_loss_normalization=normalization,
                   slot_head="bio_type")
    logits = {"intent_logits": tf.constant(intent_logits),
              "slot_position_logits": tf.constant(position_logits),
              "slot_type_logits": tf.constant(type_logits)}
    features = {"intent_id": tf.constant([0, 1]), "slot_ids": tf.constant(_BIO_TAGS),
                "first_piece_mask": tf.constant(_BIO_FIRST)}
    loss, parts = task.build_losses(logits, features)
    with tf.Session() as session:
      loss, parts = session.run([loss, parts])
  position_loss, type_loss = _bio_loss_numpy(position_logits, type_logits, gamma, normalization)
  # Counted: row 0 words O, B-artist (position only for O); row 1 word I-artist.
  assert parts["slot_position_loss"] == pytest.approx(position_loss, rel=1e-5)
  assert parts["slot_type_loss"] == pytest.approx(type_loss, rel=1e-5)
  assert parts["slot_loss"] == pytest.approx(position_loss + type_loss, rel=1e-5)
  assert loss == pytest.approx(parts["intent_loss"] + position_loss + type_loss, rel=1e-5)


def test_bio_type_decodes_position_then_type_into_tag_ids_of_the_vocabulary():
  from bert_nlu.tasks import nlu  # pylint: disable=g-import-not-at-top
  # Words: O wins; B + artist; I + artist; B + city; I + city (never in training -> B-city).
  position_logits = np.array([[[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 1.0, 1.5],
                               [-1.0, 0.5, 0.0], [0.0, 0.0, 0.1]]], np.float32)
  type_logits = np.array([[[0.0, 5.0], [1.0, 0.0], [0.2, 0.1], [0.0, 0.3], [-2.0, 2.0]]],
                         np.float32)
  with tf.Graph().as_default():
    task = NluTask(BIO_LABELS, slot_head="bio_type")
    predictions = task.build_predictions(
        {"intent_logits": tf.constant([[0.0, 1.0]]),
         "slot_position_logits": tf.constant(position_logits),
         "slot_type_logits": tf.constant(type_logits)}, {})
    with tf.Session() as session:
      predictions = session.run(predictions)
  tags = [BIO_LABELS.slot_tags[i] for i in predictions["slot_ids"][0]]
  assert tags == ["O", "B-artist", "I-artist", "B-city", "B-city"]
  # Tag probabilities: p(O) = p(O); p(B-x) = p(B) p(x); I-city's mass goes to B-city.
  p_position = np.exp(_log_softmax(position_logits[0]))
  p_type = np.exp(_log_softmax(type_logits[0]))
  index = {tag: i for i, tag in enumerate(BIO_LABELS.slot_tags)}
  expected = np.zeros([5, len(index)])
  expected[:, index["O"]] = p_position[:, 0]
  expected[:, index["B-artist"]] = p_position[:, 1] * p_type[:, 0]
  expected[:, index["I-artist"]] = p_position[:, 2] * p_type[:, 0]
  expected[:, index["B-city"]] = (p_position[:, 1] + p_position[:, 2]) * p_type[:, 1]
  np.testing.assert_allclose(predictions["slot_probabilities"][0], expected, rtol=1e-5)
  np.testing.assert_allclose(predictions["slot_confidence"][0],
                             expected[np.arange(5), predictions["slot_ids"][0]], rtol=1e-5)


def test_bio_type_head_builds_a_position_and_a_type_layer(tiny_bert_dir):
  with tf.Graph().as_default():
    logits, _, bert_config = _task_logits(tiny_bert_dir, NluTask(BIO_LABELS, slot_head="bio_type"))
    kernels = {v.name: v.shape.as_list() for v in tf.global_variables()
               if v.name.startswith("slot_head/") and "kernel" in v.name}
  hidden = bert_config.hidden_size
  assert kernels == {"slot_head/position_dense/kernel:0": [hidden, 3],
                     "slot_head/type_dense/kernel:0": [hidden, 2]}
  assert "slot_logits" not in logits
  assert logits["slot_type_logits"].shape.as_list()[-1] == 2


@pytest.mark.parametrize("kwargs, message", [
    (dict(slot_head="bio"), "slot head 'bio' not in"),
    (dict(slot_head="bio_type", slot_crf=True), "no CRF and no per-intent layers"),
    (dict(slot_head="bio_type", per_intent_slot_heads=True), "no CRF and no per-intent layers"),
])
def test_bio_type_head_refuses_what_it_does_not_support(kwargs, message):
  with pytest.raises(ValueError, match=message):
    NluTask(BIO_LABELS, **kwargs)
  with pytest.raises(ValueError, match="at least one slot type"):
    NluTask(LabelMaps(("a",), ("O",)), slot_head="bio_type")


def test_bio_type_run_trains_evaluates_exports_and_predicts(tiny_bert_dir, tiny_corpus_dir,
                                                            tmp_path):
  """The one tiny end-to-end run of the factored head: whole-set metrics of its decoded tags,
  and the export serves the same tags as the evaluation of the best checkpoint."""
  config = testing.tiny_training_config(tiny_bert_dir, tiny_corpus_dir, str(tmp_path / "run"),
                                        model_fields={"slot_head": "bio_type"},
                                        num_train_epochs=10)  # dev slot F1 0.73 seen
  results = train.run(config)
  for split in ("dev", "test"):
    for name in ("intent_accuracy", "slot_f1", "whole_frame_accuracy"):
      assert 0.0 <= results["splits"][split][name] <= 1.0, (split, name)
  assert results["splits"]["dev"]["slot_f1"] >= 0.5  # chance is ~0 (3 slot types, O words)
  best = hooks.read_best(config.output_dir)
  assert tf.train.load_variable(best["checkpoint"], "slot_head/type_dense/kernel").shape[1] == 3
  with open(tmp_path / "run" / "predictions_dev.jsonl", encoding="utf-8") as f:
    rows = [json.loads(line) for line in f][:10]
  predictor = NluPredictor(hooks.latest_export(config.output_dir))
  assert predictor.factored_slots
  served = predictor.predict([row["text"] for row in rows])
  # An ensemble of this one export decodes (position, type) as the model itself does.
  assert ensemble.EnsemblePredictor([predictor]).predict([row["text"] for row in rows]) == served
  for row, result in zip(rows, served):
    evaluated = [(span["slot"], span["start"], span["end"])
                 for span in metrics.tags_to_spans(row["text"].split(), row["pred_tags"])]
    assert [(span["slot"], span["word_start"], span["word_end"])
            for span in result["slots"]] == evaluated
    assert result["intent"]["name"] == row["pred_intent"]
