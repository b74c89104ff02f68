"""Exports a Google-format BERT checkpoint as a TF2 SavedModel with the TF-Hub encoder interface.

The SavedModel has the interface of the public TF-Hub BERT encoders (v3/v4, e.g.
tensorflow/bert_en_uncased_L-12_H-768_A-12/4, as Model Garden's export_tfhub_lib writes them):

  encoder = hub.load(path)            # or hub.KerasLayer(path, trainable=True)
  outputs = encoder(dict(
      input_word_ids=...,   # int32 [batch, seq]
      input_mask=...,       # int32 [batch, seq], 1 for real tokens
      input_type_ids=...),  # int32 [batch, seq]
      training=False)
  outputs["pooled_output"]    # float32 [batch, hidden]
  outputs["sequence_output"]  # float32 [batch, seq, hidden]
  outputs["encoder_outputs"]  # list of float32 [batch, seq, hidden], one per layer
  outputs["default"]          # alias of pooled_output
  encoder.vocab_file          # tf.saved_model.Asset: the word-piece vocabulary (assets/vocab.txt)
  encoder.do_lower_case       # tf.Variable(bool, trainable=False)

The encoder is a small Keras layer (`BertEncoderLayer`) that computes what bert-tensorflow's
`BertModel` computes (embeddings + LayerNorm, post-LayerNorm transformer layers with the -10000
attention-mask adder, tanh pooler on [CLS]; `hidden_act` "gelu" is bert's tanh form, "gelu_exact"
the erf form), so the export equals the checkpoint path (tests/test_hub_export.py: <= 1e-5).

Variable names: each variable is named after its checkpoint variable without the leading "bert/":
  bert/embeddings/{word,token_type,position}_embeddings   -> embeddings/..._embeddings
  bert/embeddings/LayerNorm/{gamma,beta}                  -> embeddings/LayerNorm/...
  bert/encoder/layer_N/attention/self/{query,key,value}/{kernel,bias}
  bert/encoder/layer_N/attention/output/{dense/{kernel,bias},LayerNorm/{gamma,beta}}
  bert/encoder/layer_N/intermediate/dense/{kernel,bias}
  bert/encoder/layer_N/output/{dense/{kernel,bias},LayerNorm/{gamma,beta}}
  bert/pooler/dense/{kernel,bias}                         -> pooler/dense/...
The weights are the checkpoint's values (no copy through a second graph). Loaded by
`hub.KerasLayer` inside the scope "bert" (bert_nlu.hub_module), they carry BertModel's own names
again, so name-based features (layer-wise learning rates, frozen layers) apply to them.

Usage:
  python -m bert_nlu.hub_export --bert_dir=DIR --output=DIR [--do_lower_case] [--overwrite]
"""

import math
import os
import shutil
import sys
import tempfile
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from bert_nlu import encoder as encoder_lib
from bert_nlu import io_utils
from bert_nlu.errors import InputError

BERT_CONFIG_NAME = "bert_config.json"
VOCAB_NAME = "vocab.txt"
CHECKPOINT_PREFIX_NAME = "bert_model.ckpt"
CHECKPOINT_SCOPE = "bert/"
INPUT_NAMES = ("input_word_ids", "input_mask", "input_type_ids")
OUTPUT_NAMES = ("pooled_output", "sequence_output", "encoder_outputs", "default")
LAYER_NORM_EPSILON = 1e-12  # tf_slim.layer_norm's, which bert-tensorflow uses
ATTENTION_MASK_ADDER = -10000.0  # bert-tensorflow's value for masked positions


def encoder_variable_names(num_hidden_layers: int) -> List[str]:
  """The checkpoint names (without "bert/") of every encoder variable, in a fixed order."""
  names = [f"embeddings/{table}_embeddings" for table in ("word", "token_type", "position")]
  names += ["embeddings/LayerNorm/gamma", "embeddings/LayerNorm/beta"]
  for index in range(num_hidden_layers):
    layer = f"encoder/layer_{index}/"
    for part in ("attention/self/query", "attention/self/key", "attention/self/value",
                 "attention/output/dense", "intermediate/dense", "output/dense"):
      names += [layer + part + "/kernel", layer + part + "/bias"]
    for part in ("attention/output/LayerNorm", "output/LayerNorm"):
      names += [layer + part + "/gamma", layer + part + "/beta"]
  return names + ["pooler/dense/kernel", "pooler/dense/bias"]


def read_checkpoint_weights(checkpoint: str, num_hidden_layers: int) -> Dict[str, np.ndarray]:
  """{name without "bert/": value} of the encoder variables of a Google-format checkpoint.

  Raises:
    InputError: the checkpoint lacks one of them (naming it).
  """
  reader = tf.train.load_checkpoint(checkpoint)
  available = reader.get_variable_to_shape_map()
  weights = {}
  for name in encoder_variable_names(num_hidden_layers):
    if CHECKPOINT_SCOPE + name not in available:
      raise InputError(checkpoint, f"has no variable {CHECKPOINT_SCOPE + name} (not a BERT "
                       f"checkpoint of {num_hidden_layers} layers?)")
    weights[name] = reader.get_tensor(CHECKPOINT_SCOPE + name)
  return weights


def _layer_norm(x: tf.Tensor, gamma: tf.Variable, beta: tf.Variable) -> tf.Tensor:
  """LayerNorm over the last axis, as tf_slim.layer_norm computes it."""
  mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
  return tf.nn.batch_normalization(x, mean, variance, beta, gamma, LAYER_NORM_EPSILON)


def _dense(x: tf.Tensor, kernel: tf.Variable, bias: tf.Variable) -> tf.Tensor:
  """x [..., in] @ kernel [in, out] + bias [out] -> [..., out]."""
  return tf.tensordot(x, kernel, axes=[[x.shape.rank - 1], [0]]) + bias


class BertEncoderLayer(tf.keras.layers.Layer):
  """bert-tensorflow's BertModel as one Keras layer holding the checkpoint's weights.

  Args:
    bert_config: bert_config.json as a dict (hidden_act may be "gelu_exact").
    weights: `read_checkpoint_weights(...)` of that config.
  """

  def __init__(self, bert_config: Dict, weights: Dict[str, np.ndarray], **kwargs):
    super().__init__(**kwargs)
    self._num_layers = bert_config["num_hidden_layers"]
    self._num_heads = bert_config["num_attention_heads"]
    self._hidden_dropout = bert_config["hidden_dropout_prob"]
    self._attention_dropout = bert_config["attention_probs_dropout_prob"]
    self._activation = _activation(bert_config["hidden_act"])
    # Created outside any name scope: each variable's name is its checkpoint name minus "bert/".
    self._variables_by_name = {
        name: tf.Variable(weights[name], name=name, dtype=tf.float32, trainable=True)
        for name in encoder_variable_names(self._num_layers)}

  def _var(self, name: str) -> tf.Variable:
    return self._variables_by_name[name]

  def _dropout(self, x: tf.Tensor, rate: float, training: bool) -> tf.Tensor:
    return tf.nn.dropout(x, rate=rate) if training and rate > 0 else x

  def _attention(self, x: tf.Tensor, mask_adder: tf.Tensor, prefix: str,
                 training: bool) -> tf.Tensor:
    """Multi-head self-attention: x [batch, seq, hidden] -> context [batch, seq, hidden]."""
    batch_size, seq_length = tf.shape(x)[0], tf.shape(x)[1]
    hidden_size = x.shape[-1]
    head_size = hidden_size // self._num_heads

    def heads(name):  # [batch, heads, seq, head_size]
      projected = _dense(x, self._var(f"{prefix}self/{name}/kernel"),
                         self._var(f"{prefix}self/{name}/bias"))
      projected = tf.reshape(projected, [batch_size, seq_length, self._num_heads, head_size])
      return tf.transpose(projected, [0, 2, 1, 3])

    query, key, value = heads("query"), heads("key"), heads("value")
    scores = tf.matmul(query, key, transpose_b=True) * (1.0 / math.sqrt(float(head_size)))
    scores += mask_adder  # [batch, heads, seq_from, seq_to]
    probabilities = self._dropout(tf.nn.softmax(scores), self._attention_dropout, training)
    context = tf.transpose(tf.matmul(probabilities, value), [0, 2, 1, 3])
    return tf.reshape(context, [batch_size, seq_length, hidden_size])

  def call(self, inputs: Dict[str, tf.Tensor], training: Optional[bool] = None):
    """Args: inputs: the three int32 [batch, seq] tensors of INPUT_NAMES.
    Returns: {pooled_output [batch, hidden], sequence_output [batch, seq, hidden],
    encoder_outputs: [batch, seq, hidden] per layer}."""
    training = bool(training)
    word_ids = inputs["input_word_ids"]  # [batch, seq]
    seq_length = tf.shape(word_ids)[1]
    x = (tf.gather(self._var("embeddings/word_embeddings"), word_ids)
         + tf.gather(self._var("embeddings/token_type_embeddings"), inputs["input_type_ids"])
         + self._var("embeddings/position_embeddings")[tf.newaxis, :seq_length])
    x = _layer_norm(x, self._var("embeddings/LayerNorm/gamma"),
                    self._var("embeddings/LayerNorm/beta"))
    x = self._dropout(x, self._hidden_dropout, training)  # [batch, seq, hidden]
    to_mask = tf.cast(inputs["input_mask"], tf.float32)[:, tf.newaxis, tf.newaxis, :]
    mask_adder = (1.0 - to_mask) * ATTENTION_MASK_ADDER  # [batch, 1, 1, seq_to]
    encoder_outputs = []
    for index in range(self._num_layers):
      layer = f"encoder/layer_{index}/"
      context = self._attention(x, mask_adder, layer + "attention/", training)
      attention_output = _dense(context, self._var(layer + "attention/output/dense/kernel"),
                                self._var(layer + "attention/output/dense/bias"))
      attention_output = _layer_norm(
          self._dropout(attention_output, self._hidden_dropout, training) + x,
          self._var(layer + "attention/output/LayerNorm/gamma"),
          self._var(layer + "attention/output/LayerNorm/beta"))
      intermediate = self._activation(_dense(
          attention_output, self._var(layer + "intermediate/dense/kernel"),
          self._var(layer + "intermediate/dense/bias")))  # [batch, seq, intermediate]
      output = _dense(intermediate, self._var(layer + "output/dense/kernel"),
                      self._var(layer + "output/dense/bias"))
      x = _layer_norm(self._dropout(output, self._hidden_dropout, training) + attention_output,
                      self._var(layer + "output/LayerNorm/gamma"),
                      self._var(layer + "output/LayerNorm/beta"))
      encoder_outputs.append(x)
    pooled = tf.tanh(_dense(x[:, 0], self._var("pooler/dense/kernel"),
                            self._var("pooler/dense/bias")))  # [batch, hidden]
    return {"pooled_output": pooled, "sequence_output": x, "encoder_outputs": encoder_outputs}


def _activation(hidden_act: str):
  if hidden_act == encoder_lib.EXACT_GELU:
    return encoder_lib.exact_gelu
  if hidden_act == "gelu":  # bert-tensorflow's tanh approximation
    return lambda x: 0.5 * x * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi)
                                              * (x + 0.044715 * tf.pow(x, 3))))
  if hidden_act in ("relu", "tanh"):
    return getattr(tf.nn, hidden_act)
  if hidden_act == "linear":
    return tf.identity
  raise ValueError(f"unsupported hidden_act {hidden_act!r}")


def build_hub_encoder(bert_config: Dict, checkpoint: str, vocab_file: str,
                      do_lower_case: bool) -> tf.keras.Model:
  """The Keras model to save: dict inputs and outputs of the TF-Hub encoder interface, with the
  `vocab_file` asset and the `do_lower_case` variable attached as Model Garden attaches them."""
  weights = read_checkpoint_weights(checkpoint, bert_config["num_hidden_layers"])
  inputs = {name: tf.keras.Input(shape=(None,), dtype=tf.int32, name=name)
            for name in INPUT_NAMES}
  outputs = dict(BertEncoderLayer(bert_config, weights, name="bert_encoder")(inputs))
  outputs["default"] = outputs["pooled_output"]
  model = tf.keras.Model(inputs=inputs, outputs=outputs)
  model.vocab_file = tf.saved_model.Asset(vocab_file)
  model.do_lower_case = tf.Variable(do_lower_case, trainable=False, name="do_lower_case")
  return model


def export_hub_encoder(bert_dir: str, output_dir: str, do_lower_case: Optional[bool] = None,
                       overwrite: bool = False) -> str:
  """Writes the SavedModel of <bert_dir>/{bert_config.json, vocab.txt, bert_model.ckpt} into
  `output_dir` (atomically: a temporary sibling renamed when complete); returns output_dir.

  Args:
    do_lower_case: None = bert_config.json's "do_lower_case" (bert_nlu.convert writes it), else
      True.

  Raises:
    InputError: a missing input file or variable, or an existing output without `overwrite`.
  """
  config_path = os.path.join(bert_dir, BERT_CONFIG_NAME)
  vocab_path = os.path.join(bert_dir, VOCAB_NAME)
  checkpoint = os.path.join(bert_dir, CHECKPOINT_PREFIX_NAME)
  for path in (config_path, vocab_path, checkpoint + ".index"):
    if not os.path.isfile(path):
      raise InputError(path, "does not exist (expected a Google-format BERT directory)")
  if os.path.lexists(output_dir) and not overwrite:
    raise InputError(output_dir, "exists; pass --overwrite to replace it")
  bert_config = io_utils.read_json(config_path)
  if do_lower_case is None:
    do_lower_case = bool(bert_config.get("do_lower_case", True))
  model = build_hub_encoder(bert_config, checkpoint, vocab_path, do_lower_case)
  parent = os.path.dirname(os.path.abspath(output_dir))
  os.makedirs(parent, exist_ok=True)
  temporary = tempfile.mkdtemp(prefix="." + os.path.basename(output_dir) + ".", dir=parent)
  try:
    model.save(temporary, include_optimizer=False, save_format="tf")
    if os.path.lexists(output_dir):
      shutil.rmtree(output_dir)
    os.rename(temporary, output_dir)
  finally:
    shutil.rmtree(temporary, ignore_errors=True)
  return output_dir


def main(argv: List[str]) -> None:
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  flag_values = flags.FLAGS
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  for name in ("bert_dir", "output"):
    if not flag_values[name].value:
      raise app.UsageError(f"--{name} is required")
  try:
    output = export_hub_encoder(flag_values.bert_dir, flag_values.output,
                                flag_values.do_lower_case, flag_values.overwrite)
  except InputError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  print(output)


def run_main() -> None:
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("bert_dir", None, "Google-format BERT directory: bert_config.json, "
                      "vocab.txt, bert_model.ckpt.")
  flags.DEFINE_string("output", None, "Directory of the SavedModel to write.")
  flags.DEFINE_bool("do_lower_case", None, "The module's do_lower_case (default: "
                    "bert_config.json's do_lower_case, else True).")
  flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")
  app.run(main)


if __name__ == "__main__":
  run_main()
