"""bert_nlu.distribute + the update under replication: 2 CPU replicas of the Estimator, each on
different examples, must train the tiny classifier to the weights of 1 replica on the same global
batch (gradients all-reduced once per step, optimizer slots updated once); the same holds when the
encoder is a TF-Hub module (a hub.KerasLayer built in each replica's model_fn)."""

import os

import numpy as np
import pytest

from bert_nlu import distribute, hub_module, model, optimization
from bert_nlu.compat import tf
from bert_nlu.testing import assert_same_trained_weights, tiny_classifier_examples
from bert_nlu.testing import tiny_classifier_initial_weights, tiny_classifier_loss

GLOBAL_BATCH = 8
NUM_STEPS = 4


def _save_checkpoint(weights, path):
  with tf.Graph().as_default():
    variables = [tf.Variable(value, name=name) for name, value in weights.items()]
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      tf.train.Saver(variables).save(session, path, write_meta_graph=False)
  return path


def _hub_classifier_loss(handle):
  """tiny_classifier_loss with a TF-Hub module as the encoder (run without its dropout)."""
  def loss_fn(input_ids, input_mask, labels):
    pooled, _ = hub_module.build_hub_encoder(
        handle, {"input_ids": input_ids, "input_mask": input_mask,
                 "segment_ids": tf.zeros_like(input_ids)}, is_training=False)
    logits = tf.layers.dense(pooled, 3, name="classifier")  # as tiny_classifier_loss's
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                                         logits=logits))
  return loss_fn


def _model_fn_builder(init_checkpoint, accumulation_steps=1, dynamic_loss_scale=False,
                      train_layers_from=0, loss_fn=tiny_classifier_loss):
  """Every variable of `init_checkpoint` starts from it (a TF-Hub module's from the module)."""
  def model_fn(features, labels, mode, params):  # pylint: disable=unused-argument
    loss = loss_fn(features["input_ids"], features["input_mask"], features["label"])
    tf.train.init_from_checkpoint(init_checkpoint, {name: name for name, _ in
                                                    tf.train.list_variables(init_checkpoint)})
    model.freeze_lower_encoder(train_layers_from)  # as model_fn_builder does (0: none)
    train_op, _ = optimization.build_train_op(
        loss, 1e-2, num_train_steps=NUM_STEPS * accumulation_steps,
        num_warmup_steps=accumulation_steps, weight_decay=0.01,
        clip_norm=1.0, dynamic_loss_scale=dynamic_loss_scale,
        gradient_accumulation_steps=accumulation_steps)
    return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)
  return model_fn


def _input_fn_builder(examples, batch_size):
  """Batches of consecutive examples, in order (replica r of a step takes the r-th batch)."""
  input_ids, input_mask, labels = examples

  def input_fn(params=None, input_context=None):  # pylint: disable=unused-argument
    dataset = tf.data.Dataset.from_tensor_slices(
        {"input_ids": input_ids, "input_mask": input_mask, "label": labels})
    return dataset.batch(batch_size, drop_remainder=True).repeat()
  return input_fn


def _train(model_dir, init_checkpoint, distribution, devices=(), accumulation_steps=1,
           fp16=False, train_layers_from=0, loss_fn=tiny_classifier_loss):
  """NUM_STEPS updates of GLOBAL_BATCH examples each; returns (placement, variables by name)."""
  placement = distribute.make_placement(distribution, devices=devices)
  batch_size = distribute.per_replica_batch_size(GLOBAL_BATCH // accumulation_steps,
                                                 placement.num_replicas)
  fp16_session = model.session_config(model.ModelConfig("unused", "unused", "unused", fp16=True))
  run_config = tf.estimator.RunConfig(
      model_dir=model_dir, train_distribute=placement.strategy,
      session_config=distribute.session_config_with_devices(fp16_session if fp16 else None,
                                                            placement.cpu_devices))
  estimator = tf.estimator.Estimator(
      _model_fn_builder(init_checkpoint, accumulation_steps, dynamic_loss_scale=fp16,
                        train_layers_from=train_layers_from, loss_fn=loss_fn),
      config=run_config)
  examples = tiny_classifier_examples(GLOBAL_BATCH * NUM_STEPS)
  num_steps = NUM_STEPS * accumulation_steps
  estimator.train(_input_fn_builder(examples, batch_size), max_steps=num_steps)
  names = estimator.get_variable_names()
  assert estimator.get_variable_value("global_step") == num_steps
  return placement, {name: estimator.get_variable_value(name) for name in names
                     if not name.startswith(("global_step", "loss_scale"))}


@pytest.fixture(scope="module")
def initial(tmp_path_factory):
  weights = tiny_classifier_initial_weights()
  path = str(tmp_path_factory.mktemp("init") / "init.ckpt")
  return weights, _save_checkpoint(weights, path)


@pytest.fixture(scope="module")
def one_replica(initial, tmp_path_factory):
  return _train(str(tmp_path_factory.mktemp("one")), initial[1], "none")[1]


@pytest.mark.parametrize("accumulation_steps,fp16", [(1, False), (2, True)])
def test_two_cpu_replicas_train_as_one_replica_on_the_global_batch(initial, one_replica,
                                                                  tmp_path, accumulation_steps,
                                                                  fp16):
  """(2, True): each replica accumulates 2 micro-batches under fp16 loss scaling and the
  mixed-precision session config (the rewrite is built; without a GPU it leaves the graph alone):
  still the update of the global batch."""
  weights, init_checkpoint = initial
  placement, two = _train(str(tmp_path / "two"), init_checkpoint, "mirrored",
                          devices=("/cpu:0", "/cpu:1"), accumulation_steps=accumulation_steps,
                          fp16=fp16)
  assert placement.num_replicas == 2
  # The slots (adam_m, adam_v) are compared too: updated once per step with the mean gradient.
  assert any(name.endswith("/adam_v") for name in two)
  two = {name: value for name, value in two.items() if not name.endswith("gradient_accumulator")}
  initial_slots = {name: np.zeros_like(value) for name, value in two.items()
                   if name not in weights}
  assert_same_trained_weights(one_replica, two, {**weights, **initial_slots})


def test_frozen_layers_stay_frozen_on_two_replicas_with_accumulation(initial, tmp_path):
  """--train_layers_from=1: the embeddings and layer 0 keep their initial values bit for bit and
  have no Adam slots and no gradient accumulators; the layers above train and have both."""
  weights, init_checkpoint = initial
  _, trained = _train(str(tmp_path / "frozen"), init_checkpoint, "mirrored",
                      devices=("/cpu:0", "/cpu:1"), accumulation_steps=2, train_layers_from=1)
  frozen = [name for name in weights if optimization.is_frozen(name, 1)]
  assert any(name.startswith("bert/embeddings/") for name in frozen)
  assert any(name.startswith("bert/encoder/layer_0/") for name in frozen)
  for name in frozen:
    np.testing.assert_array_equal(trained[name], weights[name], err_msg=name)
    assert not [n for n in trained if n.startswith(name + "/")], f"{name} has optimizer state"
  for name in weights:
    if name in frozen:
      continue
    assert {f"{name}/adam_m", f"{name}/adam_v", f"{name}/gradient_accumulator"} <= set(trained)
    if "LayerNorm" not in name and not name.endswith("bias"):
      assert np.abs(trained[name] - weights[name]).max() > 0, f"{name} did not train"


def _float_values(weights):
  return {name: value for name, value in weights.items() if np.asarray(value).dtype.kind == "f"}


def test_two_cpu_replicas_fine_tune_a_hub_module_as_one_replica(plain_keras_hub_module,
                                                                 tmp_path):
  """Each replica's model_fn builds its own hub.KerasLayer; the module's variables are created
  once (MirroredVariables, one copy per device, each replica reading its own) and start from the
  module's values. 2 replicas on different examples reach the weights of 1 replica on the same
  global batch (classifier, module variables and their Adam slots), the module's variables
  train, and the checkpoint holds the same names as the 1-replica one (no per-device copies)."""
  classifier = {name: value for name, value in tiny_classifier_initial_weights().items()
                if name.startswith("classifier/")}
  init_checkpoint = _save_checkpoint(classifier, str(tmp_path / "classifier.ckpt"))
  loss_fn = _hub_classifier_loss(plain_keras_hub_module)
  _, one = _train(str(tmp_path / "one"), init_checkpoint, "none", loss_fn=loss_fn)
  placement, two = _train(str(tmp_path / "two"), init_checkpoint, "mirrored",
                          devices=("/cpu:0", "/cpu:1"), loss_fn=loss_fn)
  assert placement.num_replicas == 2
  assert sorted(two) == sorted(one)
  assert not [name for name in two if "replica_" in name]
  import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
  module = {f"{hub_module.SCOPE}/{v.name.split(':')[0]}": v.numpy()
            for v in hub.load(plain_keras_hub_module).trainable_variables}
  assert set(module) < set(two) and {f"{name}/adam_v" for name in module} < set(two)
  one, two = _float_values(one), _float_values(two)
  initial_slots = {name: np.zeros_like(value) for name, value in two.items()
                   if name not in module and name not in classifier}
  assert_same_trained_weights(one, two, {**module, **classifier, **initial_slots})
  # The module's variables train, from the module's values. Bound: the learning rates of steps
  # 0-3 are 0, 7.5e-3, 5e-3, 2.5e-3, and bert's Adam (no bias correction) moves an element by at
  # most lr * (1 - 0.9^k) / sqrt(1 - 0.999^k) at its k-th update (4.25, 4.95, 5.44 for k = 2, 3,
  # 4): 0.070 in all (measured 0.069); a fresh initialisation would be much further off.
  for name, value in module.items():
    change = np.abs(two[name] - value).max()
    assert 1e-3 < change < 0.072, f"{name}: changed by {change}"


def test_per_replica_batch_must_divide_the_global_batch():
  assert distribute.per_replica_batch_size(32, 2) == 16
  with pytest.raises(ValueError, match="multiple of the 3 replicas"):
    distribute.per_replica_batch_size(32, 3)


def test_cpu_devices_are_exposed_in_the_session_config():
  fp16 = model.session_config(model.ModelConfig("c", "v", "i", fp16=True))
  merged = distribute.session_config_with_devices(fp16, 2)
  assert merged.device_count["CPU"] == 2
  assert merged.graph_options.rewrite_options.auto_mixed_precision == \
      fp16.graph_options.rewrite_options.auto_mixed_precision
  assert distribute.session_config_with_devices(None, 0) is None
