"""bert_nlu.hub_export: the SavedModel has the public TF-Hub BERT encoder interface and computes
what bert-tensorflow's BertModel computes on the same checkpoint (max abs difference <= 1e-5)."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

from bert_nlu import hub_export, testing
from bert_nlu.errors import InputError

TOLERANCE = 1e-5


def random_inputs(vocab_size: int, seed: int = 0):
  """int32 [3, 9] word ids, a mask with padding in two rows, segment ids 0/1."""
  rng = np.random.RandomState(seed)
  word_ids = rng.randint(0, vocab_size, [3, 9]).astype(np.int32)
  mask = np.ones([3, 9], np.int32)
  mask[1, 5:] = 0
  mask[2, 2:] = 0
  type_ids = (np.arange(9)[np.newaxis] >= 4).astype(np.int32).repeat(3, 0)
  return word_ids, mask, type_ids


def write_bert_dir(directory: str, hidden_act: str, do_lower_case: bool = True) -> str:
  """A tiny random checkpoint whose bert_config.json names `hidden_act` and `do_lower_case`."""
  testing.make_tiny_bert(directory, testing.corpus_vocabulary(), num_layers=3, seed=3)
  path = os.path.join(directory, "bert_config.json")
  with open(path, encoding="utf-8") as f:
    config = json.load(f)
  config.update(hidden_act=hidden_act, do_lower_case=do_lower_case)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(config, f)
  return directory


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """(bert_dir, exported SavedModel path): the erf GELU (as converted HF models), lower case."""
  root = tmp_path_factory.mktemp("hub_gelu_exact")
  bert_dir = write_bert_dir(str(root / "bert"), "gelu_exact")
  return bert_dir, hub_export.export_hub_encoder(bert_dir, str(root / "hub"))


@pytest.fixture(scope="module")
def exported_tanh_cased(tmp_path_factory):
  """The same with bert's tanh GELU and do_lower_case false in bert_config.json."""
  root = tmp_path_factory.mktemp("hub_gelu")
  bert_dir = write_bert_dir(str(root / "bert"), "gelu", do_lower_case=False)
  return bert_dir, hub_export.export_hub_encoder(bert_dir, str(root / "hub"))


@pytest.mark.parametrize("export_fixture", ["exported", "exported_tanh_cased"])
def test_outputs_equal_bert_model_on_the_same_checkpoint(request, export_fixture):
  bert_dir, path = request.getfixturevalue(export_fixture)
  word_ids, mask, type_ids = random_inputs(len(testing.corpus_vocabulary()))
  module = hub.load(path)
  outputs = module({"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": type_ids},
                   training=False)
  pooled, sequence, layers = testing.bert_model_outputs(bert_dir, word_ids, mask, type_ids)
  assert np.abs(outputs["pooled_output"].numpy() - pooled).max() <= TOLERANCE
  assert np.abs(outputs["sequence_output"].numpy() - sequence).max() <= TOLERANCE
  assert len(outputs["encoder_outputs"]) == len(layers) == 3
  for ours, theirs in zip(outputs["encoder_outputs"], layers):
    assert np.abs(ours.numpy() - theirs).max() <= TOLERANCE
  np.testing.assert_array_equal(outputs["default"].numpy(), outputs["pooled_output"].numpy())
  assert np.abs(pooled).max() > 1e-3  # a real comparison, not of zeros


def test_the_interface_is_the_public_tf_hub_encoders_one(exported):
  bert_dir, path = exported
  module = hub.load(path)
  _, inputs = module.signatures["serving_default"].structured_input_signature
  assert {name: (spec.dtype, spec.shape.as_list()) for name, spec in inputs.items()} == {
      name: (tf.int32, [None, None]) for name in hub_export.INPUT_NAMES}
  word_ids, mask, type_ids = random_inputs(len(testing.corpus_vocabulary()))
  outputs = module({"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": type_ids})
  assert set(outputs) == set(hub_export.OUTPUT_NAMES)
  asset = module.vocab_file.asset_path.numpy().decode()
  assert os.path.basename(asset) == "vocab.txt" and asset.startswith(path)
  with open(asset, encoding="utf-8") as ours, \
      open(os.path.join(bert_dir, "vocab.txt"), encoding="utf-8") as theirs:
    assert ours.read() == theirs.read()
  assert module.do_lower_case.dtype == tf.bool and bool(module.do_lower_case.numpy())
  assert not module.do_lower_case.trainable


def test_variables_carry_the_checkpoint_names_and_train_through_keras_layer(exported):
  bert_dir, path = exported
  module = hub.load(path)
  names = sorted(v.name.split(":")[0] for v in module.trainable_variables)
  checkpoint_names = sorted(name[len("bert/"):] for name, _ in tf.train.list_variables(
      os.path.join(bert_dir, "bert_model.ckpt")) if name.startswith("bert/"))
  assert names == checkpoint_names == sorted(hub_export.encoder_variable_names(3))
  layer = hub.KerasLayer(path, trainable=True)
  word_ids, mask, type_ids = random_inputs(len(testing.corpus_vocabulary()))
  inputs = {"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": type_ids}
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(layer(inputs, training=True)["pooled_output"] ** 2)
  gradients = tape.gradient(loss, layer.trainable_variables)
  assert len(layer.trainable_variables) == len(names)
  assert all(g is not None for g in gradients)
  # training=True applies the checkpoint's dropout (0.1): outputs differ from inference.
  assert np.abs(layer(inputs, training=True)["sequence_output"].numpy()
                - layer(inputs, training=False)["sequence_output"].numpy()).max() > 1e-3


def test_do_lower_case_follows_bert_config(exported_tanh_cased):
  assert not bool(hub.load(exported_tanh_cased[1]).do_lower_case.numpy())


def test_bad_inputs_are_input_errors_naming_the_file(exported, tmp_path):
  bert_dir, path = exported
  with pytest.raises(InputError, match="exists; pass --overwrite"):
    hub_export.export_hub_encoder(bert_dir, path)
  broken = str(tmp_path / "two_layers_claimed_four")
  shutil.copytree(bert_dir, broken)
  with open(os.path.join(broken, "bert_config.json"), encoding="utf-8") as f:
    config = json.load(f)
  with open(os.path.join(broken, "bert_config.json"), "w", encoding="utf-8") as f:
    json.dump(dict(config, num_hidden_layers=4), f)
  with pytest.raises(InputError, match="has no variable bert/encoder/layer_3/"):
    hub_export.export_hub_encoder(broken, str(tmp_path / "out"))
  assert not os.path.exists(tmp_path / "out")
  with pytest.raises(InputError, match="vocab.txt: does not exist"):
    os.remove(os.path.join(broken, "vocab.txt"))
    hub_export.export_hub_encoder(broken, str(tmp_path / "out"))
