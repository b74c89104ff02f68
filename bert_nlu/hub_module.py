"""TF-Hub BERT encoders (SavedModels with the public TF-Hub encoder interface) as the encoder.

`--hub_module=PATH_OR_HANDLE` (a local directory or a tfhub.dev / Kaggle handle, passed to
tensorflow_hub unchanged) replaces the checkpoint's BertModel:

  * `describe(handle)` loads the module once (eagerly) and reads what the run needs before any
    graph exists: its vocabulary asset (`vocab_file`) and `do_lower_case`, its hidden size and
    number of layers (from one call on a 2-token input), and whether its variables carry
    BertModel's names (modules written by `bert_nlu.hub_export` do; see `google_layout`).
  * `build_hub_encoder(...)` is called inside the Estimator's model_fn (graph mode): a
    `hub.KerasLayer(handle, trainable=True)` built in the variable scope "bert". In TF 2.15 graph
    mode its variables are global variables (so checkpoints, resume, the in-process evaluator and
    the export save and restore them by name, and the global-variables initializer loads the
    module's values) but NOT in the graph's trainable variables: they are added to that
    collection here, so the optimizer (and frozen layers, parameter counts)
    see them as they see BertModel's.

Replicated training (`--distribution=mirrored`, `multi_worker`; bert_nlu/distribute.py): the
Estimator calls the model_fn once per replica, so each replica builds its own KerasLayer and loads
the SavedModel. The module's variables are nevertheless created once, as MirroredVariables: the
SavedModel loader creates them through the graph's variable creators with a lower priority than
a strategy's (tensorflow/python/saved_model/load.py `uninitialized_variable_creator`), and under
MirroredStrategy the replicas after the first reuse the first replica's variables by name
(tensorflow/python/distribute/shared_variable_creator.py). The restore of the module's values
becomes the MirroredVariable's initializer and sets every device's copy; each replica's call of
the module reads its own copy. One thing needs fixing here (`_collect_distributed_variables`): the
loader's per-device `UninitializedVariable`s put themselves into GLOBAL_VARIABLES beside their
MirroredVariable, so the Saver would checkpoint the copies too ("bert/pooler/kernel/replica_1")
and a checkpoint's names would depend on the number of devices.

Layers (`--layers=N`): the heads read `encoder_outputs[N - 1]`; the module's pooler reads only its
last layer, so the pooled vector is then layer N's [CLS] vector (no pooler), and the whole module
still runs (no speed-up; layers above N get no gradient and do not change).
"""

import dataclasses
import functools
from typing import Dict, Optional, Tuple

from bert_nlu.compat import modeling, tf

# The variable scope of the KerasLayer: modules written by bert_nlu.hub_export then carry
# BertModel's variable names (bert/embeddings/..., bert/encoder/layer_N/..., bert/pooler/...).
SCOPE = "bert"
INPUT_NAMES = ("input_word_ids", "input_mask", "input_type_ids")
# BERT's usual position limit; the module interface does not say its own.
DEFAULT_MAX_POSITION_EMBEDDINGS = 512


@dataclasses.dataclass(frozen=True)
class HubModuleInfo:
  """What a run needs to know of a TF-Hub encoder before building a graph.

  Attributes:
    vocab_file: local path of the module's `vocab_file` asset.
    do_lower_case: the module's `do_lower_case`.
    hidden_size: H of pooled_output [batch, H].
    num_hidden_layers: len(encoder_outputs).
    vocab_size: lines of vocab_file.
    google_layout: the module's variables carry BertModel's names (without "bert/"):
      embeddings/..., encoder/layer_N/..., pooler/...; name-based options (layer-wise learning
      rates, frozen layers) apply only then.
  """
  vocab_file: str
  do_lower_case: bool
  hidden_size: int
  num_hidden_layers: int
  vocab_size: int
  google_layout: bool


def _import_hub():
  import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
  return hub


@functools.lru_cache(maxsize=None)
def describe(handle: str) -> HubModuleInfo:
  """Loads the module (eagerly, once per process and handle) and describes it.

  Raises:
    ValueError: the module lacks part of the TF-Hub BERT encoder interface (names which).
  """
  import tensorflow as tf2  # pylint: disable=g-import-not-at-top
  module = _import_hub().load(handle)
  for attribute in ("vocab_file", "do_lower_case"):
    if not hasattr(module, attribute):
      raise ValueError(f"TF-Hub module {handle} has no `{attribute}` (a BERT encoder exported "
                       "with its vocabulary, as the public TF-Hub BERT encoders are)")
  vocab_file = module.vocab_file.asset_path.numpy().decode("utf-8")
  with tf2.io.gfile.GFile(vocab_file) as f:
    vocab_size = sum(1 for _ in f)
  inputs = {name: tf2.constant([[2, 3]], tf2.int32) if name == "input_word_ids"
            else tf2.constant([[1, 1]] if name == "input_mask" else [[0, 0]], tf2.int32)
            for name in INPUT_NAMES}
  outputs = module(inputs, training=False)
  for key in ("pooled_output", "sequence_output", "encoder_outputs"):
    if key not in outputs:
      raise ValueError(f"TF-Hub module {handle}: its outputs {sorted(outputs)} lack {key!r}")
  names = {v.name.split(":")[0] for v in module.trainable_variables}
  num_layers = len(outputs["encoder_outputs"])
  google_layout = all(
      f"encoder/layer_{i}/attention/self/query/kernel" in names for i in range(num_layers)
  ) and "embeddings/word_embeddings" in names
  return HubModuleInfo(vocab_file=vocab_file, do_lower_case=bool(module.do_lower_case.numpy()),
                       hidden_size=int(outputs["pooled_output"].shape[-1]),
                       num_hidden_layers=num_layers, vocab_size=vocab_size,
                       google_layout=google_layout)


def bert_config_of(handle: str) -> modeling.BertConfig:
  """A BertConfig standing for the module where the trainer reads one: hidden size, layers,
  vocabulary size; max_position_embeddings = 512 and initializer_range = 0.02 (the heads'
  initializer), which the interface does not tell."""
  info = describe(handle)
  return modeling.BertConfig(vocab_size=info.vocab_size, hidden_size=info.hidden_size,
                             num_hidden_layers=info.num_hidden_layers,
                             max_position_embeddings=DEFAULT_MAX_POSITION_EMBEDDINGS,
                             initializer_range=0.02)


def _collect_distributed_variables(variables) -> None:
  """Under a tf.distribute strategy, removes the per-device copies of `variables` (distributed
  variables) from the graph's collections, which then hold each variable once, as the strategy
  made it: checkpoints carry one entry per variable, whatever the number of devices, as for the
  variables of BertModel and the heads. Without a strategy: nothing to do."""
  if not tf.distribute.has_strategy():
    return
  strategy = tf.distribute.get_strategy()
  copies = {id(copy) for variable in variables
            for copy in strategy.experimental_local_results(variable) if copy is not variable}
  graph = tf.get_default_graph()
  for key in graph.get_all_collection_keys():
    collection = graph.get_collection_ref(key)
    collection[:] = [item for item in collection if id(item) not in copies]


def build_hub_encoder(handle: str, features: Dict[str, tf.Tensor], is_training: bool,
                      num_hidden_layers: Optional[int] = None) -> Tuple[tf.Tensor, tf.Tensor]:
  """The module as the encoder of the current graph; its variables join the trainable ones.

  Args:
    handle: path or handle, passed to hub.KerasLayer unchanged.
    features: input_ids, input_mask, segment_ids, int32 [batch, seq] each.
    is_training: runs the module in training mode (its dropout).
    num_hidden_layers: N: the outputs of layer N (module docstring); None = the module's last.

  Returns:
    (pooled_output [batch, hidden], sequence_output [batch, seq, hidden]).
  """
  with tf.variable_scope(SCOPE):
    layer = _import_hub().KerasLayer(handle, trainable=True)
    outputs = layer({"input_word_ids": features["input_ids"],
                     "input_mask": features["input_mask"],
                     "input_type_ids": features["segment_ids"]}, training=is_training)
  _collect_distributed_variables(layer.variables)
  trainable = tf.get_collection_ref(tf.GraphKeys.TRAINABLE_VARIABLES)
  known = {v.name for v in trainable}
  trainable.extend(v for v in layer.trainable_variables if v.name not in known)
  encoder_outputs = outputs["encoder_outputs"]
  if num_hidden_layers is None or num_hidden_layers == len(encoder_outputs):
    return outputs["pooled_output"], outputs["sequence_output"]
  if not 1 <= num_hidden_layers <= len(encoder_outputs):
    raise ValueError(f"num_hidden_layers={num_hidden_layers} must be in "
                     f"[1, {len(encoder_outputs)}]")
  sequence_output = encoder_outputs[num_hidden_layers - 1]  # [batch, seq, hidden]
  return sequence_output[:, 0], sequence_output

