"""The BERT encoder: bert-tensorflow's BertModel built from a Google-format bert_config.json.

The only addition over `bert.modeling` is the activation name `gelu_exact`: Google's "gelu" is the
tanh approximation, HuggingFace's "gelu" is the exact erf form. Checkpoints converted from HF record
`"hidden_act": "gelu_exact"` and are built here with the erf GELU, so the converted weights compute
what they were trained to compute.
"""

import math
from typing import Optional

from bert_nlu.compat import modeling, tf

# Activation names bert's own get_activation() does not know, mapped to functions.
EXACT_GELU = "gelu_exact"


def exact_gelu(x: tf.Tensor) -> tf.Tensor:
  """GELU with the exact Gaussian CDF: x * 0.5 * (1 + erf(x / sqrt(2)))."""
  return x * 0.5 * (1.0 + tf.math.erf(x / math.sqrt(2.0)))


def load_bert_config(path: str) -> modeling.BertConfig:
  """Reads bert_config.json into a BertConfig (hidden_act kept as the string it records)."""
  return modeling.BertConfig.from_json_file(path)


def _resolve_activation(hidden_act):
  if hidden_act == EXACT_GELU:
    return exact_gelu
  return hidden_act  # bert's get_activation() handles "gelu" (tanh), "relu", "tanh", "linear"


def build_bert_model(bert_config: modeling.BertConfig,
                     is_training: bool,
                     input_ids: tf.Tensor,
                     input_mask: tf.Tensor,
                     segment_ids: tf.Tensor,
                     num_hidden_layers: Optional[int] = None,
                     encoder_dropout: Optional[float] = None) -> modeling.BertModel:
  """Builds bert-tensorflow's BertModel.

  Args:
    bert_config: the checkpoint's config; `hidden_act` may be "gelu_exact".
    is_training: enables dropout.
    input_ids: int32 [batch_size, seq_length] word-piece ids.
    input_mask: int32 [batch_size, seq_length], 1 for real tokens, 0 for padding.
    segment_ids: int32 [batch_size, seq_length] token type ids.
    num_hidden_layers: if set, build only the first N transformer layers (the rest of the
      checkpoint is ignored); None keeps the config's count.
    encoder_dropout: if set, replaces the config's hidden and attention-probability dropout
      rates (training only; no variable changes, so any checkpoint fits).

  Returns:
    The BertModel; `get_pooled_output()` is [batch_size, hidden_size] and
    `get_sequence_output()` is [batch_size, seq_length, hidden_size].
  """
  config = modeling.BertConfig.from_dict(bert_config.to_dict())  # a copy we may edit
  config.hidden_act = _resolve_activation(bert_config.hidden_act)
  if num_hidden_layers is not None:
    if not 1 <= num_hidden_layers <= bert_config.num_hidden_layers:
      raise ValueError(
          f"num_hidden_layers={num_hidden_layers} must be in [1, {bert_config.num_hidden_layers}]")
    config.num_hidden_layers = num_hidden_layers
  if encoder_dropout is not None:
    if not 0.0 <= encoder_dropout < 1.0:
      raise ValueError(f"encoder_dropout={encoder_dropout} must be in [0, 1)")
    config.hidden_dropout_prob = encoder_dropout
    config.attention_probs_dropout_prob = encoder_dropout
  return modeling.BertModel(
      config=config,
      is_training=is_training,
      input_ids=input_ids,
      input_mask=input_mask,
      token_type_ids=segment_ids,
      use_one_hot_embeddings=False)
