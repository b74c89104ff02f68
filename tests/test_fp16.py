"""--fp16: mixed-precision graph rewrite in the session config, dynamic loss scaling that skips,
counts and logs overflowing steps (no GPU here: the rewrite is checked for construction, the loss
scaling runs for real with overflows forced in float32)."""

import dataclasses
import logging

import numpy as np
import pytest

from bert_nlu import hooks, model, optimization, train
from bert_nlu.compat import tf
from bert_nlu.testing import tiny_training_config as make_config
from tensorflow.core.protobuf import rewriter_config_pb2


def test_fp16_session_config_turns_on_automatic_mixed_precision(tiny_bert_dir, tiny_corpus_dir,
                                                                 tmp_path):
  config = make_config(tiny_bert_dir, tiny_corpus_dir, str(tmp_path))
  assert model.session_config(config.model) is None
  fp16 = dataclasses.replace(config.model, fp16=True)
  options = model.session_config(fp16).graph_options.rewrite_options
  assert options.auto_mixed_precision == rewriter_config_pb2.RewriterConfig.ON


def _scaled_graph(initial_loss_scale, growth_steps):
  x = tf.placeholder(tf.float32, [2])
  w = tf.get_variable("w", initializer=tf.constant([1.0, 1.0]))
  loss = tf.reduce_sum(w * x)
  train_op, _ = optimization.build_train_op(
      loss, 0.1, 100, 0, weight_decay=0.0, clip_norm=1e30, dynamic_loss_scale=True,
      initial_loss_scale=initial_loss_scale, loss_scale_growth_steps=growth_steps)
  return x, w, train_op


def test_dynamic_loss_scale_skips_overflowing_steps_and_adapts_the_scale():
  with tf.Graph().as_default():
    x, w, train_op = _scaled_graph(initial_loss_scale=1e10, growth_steps=2)
    with tf.variable_scope("loss_scale", reuse=True):
      scale = tf.get_variable("scale", dtype=tf.float32)
      skipped = tf.get_variable("skipped_steps", dtype=tf.int64)
    with tf.variable_scope("", reuse=True):
      adam_m = tf.get_variable("w/adam_m")
    step = tf.train.get_global_step()
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      # 1e30 * 1e10 overflows float32: the step must change nothing but the scale and counters.
      session.run(train_op, {x: [1e30, 1.0]})
      assert session.run(w).tolist() == [1.0, 1.0]
      assert session.run(adam_m).tolist() == [0.0, 0.0]
      assert session.run([scale, skipped, step]) == [5e9, 1, 1]
      # Finite steps update; after 2 in a row the scale doubles.
      session.run(train_op, {x: [1.0, 1.0]})
      assert np.all(session.run(w) < 1.0)
      assert session.run(scale) == 5e9
      session.run(train_op, {x: [1.0, 1.0]})
      assert session.run([scale, skipped, step]) == [1e10, 1, 3]


def test_dynamic_loss_scale_gives_the_unscaled_update():
  updates = []
  for dynamic in (False, True):
    with tf.Graph().as_default():
      x = tf.placeholder(tf.float32, [2])
      w = tf.get_variable("w", initializer=tf.constant([1.0, -2.0]))
      loss = tf.reduce_sum(w * w * x)
      train_op, _ = optimization.build_train_op(loss, 0.1, 100, 0, dynamic_loss_scale=dynamic,
                                                initial_loss_scale=2.0 ** 15)
      with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        for _ in range(3):
          session.run(train_op, {x: [0.5, 3.0]})
        updates.append(session.run(w))
  np.testing.assert_allclose(updates[0], updates[1], rtol=1e-6)


def test_fp16_needs_the_fused_optimizer():
  with tf.Graph().as_default():
    w = tf.get_variable("w", initializer=tf.constant([1.0]))
    with pytest.raises(ValueError, match="fused"):
      optimization.build_train_op(tf.reduce_sum(w), 0.1, 10, 0, implementation="bert",
                                  dynamic_loss_scale=True)


def _float_variables(checkpoint):
  reader = tf.train.load_checkpoint(checkpoint)
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if np.asarray(reader.get_tensor(name)).dtype.kind == "f"}


def test_fp16_run_counts_and_logs_skipped_steps_and_finishes(tiny_bert_dir, tiny_corpus_dir,
                                                             tmp_path, poison_gradients, caplog):
  # Updates 10 -> 11 ... 19 -> 20 overflow; step 20 is also a checkpoint save.
  poison_gradients(range(10, 20))
  config = make_config(tiny_bert_dir, tiny_corpus_dir, str(tmp_path / "run"),
                       model_fields={"fp16": True}, num_train_epochs=3, save_checkpoints_steps=10,
                       keep_checkpoint_max=10)
  tf_logger = logging.getLogger("tensorflow")
  capture = caplog.handler if not tf_logger.propagate else logging.NullHandler()
  tf_logger.addHandler(capture)
  verbosity = tf.logging.get_verbosity()
  tf.logging.set_verbosity(tf.logging.INFO)
  try:
    results = train.run(config)
  finally:
    tf.logging.set_verbosity(verbosity)
    tf_logger.removeHandler(capture)
  skips = [r.getMessage() for r in caplog.records if "overflowed" in r.getMessage()]
  assert skips == [
      f"step {11 + k}: gradients overflowed at loss scale {2 ** (15 - k)}; update skipped, "
      f"scale halved ({k + 1} steps skipped so far)" for k in range(10)]
  assert results["training"]["fp16_skipped_steps"] == 10
  assert results["training"]["num_train_steps"] == 29  # ceil(150 * 3 / 16): all steps ran
  checkpoint = tf.train.latest_checkpoint(config.output_dir)
  assert checkpoint.endswith("-29")
  assert tf.train.load_variable(checkpoint, "loss_scale/skipped_steps") == 10
  assert tf.train.load_variable(checkpoint, "loss_scale/scale") == 2.0 ** 5  # halved 10 times
  # The checkpoint saved at the last skipped step holds finite weights and optimizer slots,
  # exactly those of the checkpoint before the skips; training then moved them again.
  prefix = checkpoint[:-len("-29")]
  before, at_skip, after = (_float_variables(f"{prefix}-{step}") for step in (10, 20, 29))
  weights = [name for name in before if not name.startswith("loss_scale/")]
  assert any(name.endswith("/adam_m") for name in weights)
  for name in weights:
    assert np.all(np.isfinite(at_skip[name])), name
    np.testing.assert_array_equal(at_skip[name], before[name], err_msg=name)
  assert any(not np.array_equal(after[name], at_skip[name]) for name in weights)


def test_without_fp16_the_same_overflow_stops_training(tiny_bert_dir, tiny_corpus_dir, tmp_path,
                                                       poison_gradients):
  # Without loss scaling, gradients * 1e38 keep the loss finite but overflow the global gradient
  # norm: a non-finite gradient is fatal in an fp32 run.
  poison_gradients([10, 11])
  config = make_config(tiny_bert_dir, tiny_corpus_dir, str(tmp_path / "run"),
                       num_train_epochs=3, save_checkpoints_steps=20)
  with pytest.raises(hooks.NonFiniteLossError) as error:
    train.run(config)
  assert error.value.step == 11
  assert "loss=inf" not in str(error.value) and "loss=nan" not in str(error.value)
  assert "gradient norm=inf" in str(error.value) or "gradient norm=nan" in str(error.value)
