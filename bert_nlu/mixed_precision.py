"""bfloat16 on CPUs: where the oneDNN rewrite may not reach, and which ops it converts.

`--bf16` turns on grappler's `auto_mixed_precision_onednn_bfloat16` (`model.session_config`). The
rewrite converts MatMul, BatchMatMul and Einsum, then element-wise ops that follow them (Add, Mul,
BiasAdd, Softmax, ...). Left alone it would also convert the gradient clipping's multiply (it
follows the kernel gradients' matrix products) and the heads' softmax. `float32_boundary` stops it:
the gradients enter the optimizer, and the logits enter the loss, softmax and CRF, in float32.

`bfloat16_report` builds a model_fn graph, rewrites it as a session with `--bf16` would, and
counts the converted ops per part of the model (encoder, heads, backward pass, loss, optimizer,
predictions, metrics). The rewrite converts nothing unless TensorFlow's oneDNN kernels are on, so
on a CPU where they are off by default, run it with TF_ENABLE_ONEDNN_OPTS=1:

  TF_ENABLE_ONEDNN_OPTS=1 python -m bert_nlu.mixed_precision \
      --bert_config_file=$HOME/.cache/bert_nlu/all-MiniLM-L6-v2/bert_config.json --slot_crf
"""

import collections
import json
from typing import Dict, Iterable, Sequence

from bert_nlu.compat import tf

ENCODER_SCOPE = "bert/"
HEAD_SCOPES = ("intent_head/", "slot_head/")
GRADIENT_SCOPE = "gradients/"
MODES = ("train", "eval", "predict")


def float32_boundary(value):
  """`value` (a float32 tensor or IndexedSlices) through an explicit float32 -> float32 Cast.

  The kernel forwards its input (no copy). The bfloat16 rewrite does not carry bfloat16 across a
  Cast (it extends bfloat16 only through element-wise ops), so what consumes the result stays
  float32; an Identity would not do (grappler prunes it before the rewrite runs). IndexedSlices
  (a gather's gradient) stay sparse: only their values pass the boundary.
  """
  if isinstance(value, tf.IndexedSlices):
    return tf.IndexedSlices(float32_boundary(value.values), value.indices, value.dense_shape)
  return tf.raw_ops.Cast(x=value, DstT=tf.float32)


def rewrite(graph: tf.Graph, fetches: Sequence, config: tf.ConfigProto):
  """The GraphDef a session with `config` runs for `fetches` (grappler's rewrites applied).

  Args:
    graph: the graph holding the fetches.
    fetches: tensors and operations the session would run (kept by the rewrite).
    config: e.g. `model.session_config(model_config, bf16_active=True)`.

  Returns:
    the rewritten GraphDef.
  """
  from tensorflow.python.grappler import tf_optimizer  # pylint: disable=g-import-not-at-top
  with graph.as_default():
    for fetch in fetches:
      graph.add_to_collection("train_op", fetch)  # grappler keeps what this collection names
    meta_graph = tf.train.export_meta_graph(graph=graph)
  rewrite_config = tf.ConfigProto()
  rewrite_config.CopyFrom(config)
  rewrite_config.graph_options.rewrite_options.min_graph_nodes = -1  # also tiny graphs
  return tf_optimizer.OptimizeGraph(rewrite_config, meta_graph)


def bfloat16_ops(graph_def) -> Dict[str, str]:
  """Node name -> op type of the nodes that compute in bfloat16 (a bfloat16 type attribute).

  Const and Cast nodes are left out: constants are data, and the Casts are the conversions the
  rewrite inserts at the borders of the bfloat16 regions.
  """
  bfloat16 = tf.bfloat16.as_datatype_enum
  return {node.name: node.op for node in graph_def.node
          if node.op not in ("Const", "Cast")
          and any(value.type == bfloat16 for value in node.attr.values())}


def _ancestors(tensors: Iterable[tf.Tensor]) -> set:
  """Names of the ops the tensors are computed from (data inputs), the tensors' own ops included."""
  seen, stack = set(), [t.op for t in tensors]
  while stack:
    op = stack.pop()
    if op.name in seen:
      continue
    seen.add(op.name)
    stack.extend(t.op for t in op.inputs)
  return seen


def model_part(name: str, loss_ops: set, prediction_ops: set, mode: str) -> str:
  """The part of the model a node of a model_fn graph belongs to, from its name.

  Args:
    name: node name (rewritten graphs keep the names; inserted nodes extend them).
    loss_ops: names of the ops the loss is computed from.
    prediction_ops: names of the ops the predictions are computed from.
    mode: "train", "eval" or "predict".

  Returns:
    "encoder", "heads", "backward", "loss", "predictions" (predict), "optimizer" (train) or
    "metrics" (eval: the metric ops and the predictions they read).
  """
  if name.startswith(GRADIENT_SCOPE):
    return "backward"
  if name.startswith(ENCODER_SCOPE):
    return "encoder"
  if name.startswith(HEAD_SCOPES):
    return "heads"
  if name in loss_ops:
    return "loss"
  if name in prediction_ops:
    return "predictions"
  return "optimizer" if mode == "train" else "metrics"


def bfloat16_report(task, bert_config, model_config, train_config, mode: str,
                    batch_size: int = 4, seq_length: int = 8) -> Dict[str, Dict[str, int]]:
  """Builds the model_fn graph of `mode`, forces the bfloat16 rewrite on it, counts converted ops.

  Args:
    task: e.g. `bert_nlu.tasks.nlu.NluTask`.
    bert_config, model_config, train_config: as for `model.model_fn_builder`.
    mode: "train", "eval" or "predict".
    batch_size, seq_length: static shapes of the input placeholders.

  Returns:
    {part: {op type: number of bfloat16 nodes}} for every part of `model_part` (empty dicts for
    parts without any).
  """
  from bert_nlu import model  # pylint: disable=g-import-not-at-top  (model imports this module)
  estimator_mode = {"train": tf.estimator.ModeKeys.TRAIN, "eval": tf.estimator.ModeKeys.EVAL,
                    "predict": tf.estimator.ModeKeys.PREDICT}[mode]
  model_fn = model.model_fn_builder(task, bert_config, model_config, train_config,
                                    num_train_steps=10, num_warmup_steps=1, eval_gold_examples=[])
  graph = tf.Graph()
  with graph.as_default():
    shape = [batch_size, seq_length]
    features = {name: tf.placeholder(tf.int32, shape, name=name) for name in
                ("input_ids", "input_mask", "segment_ids", "first_piece_mask", "slot_ids")}
    features["intent_id"] = tf.placeholder(tf.int32, [batch_size], name="intent_id")
    features["example_index"] = tf.placeholder(tf.int32, [batch_size], name="example_index")
    spec = model_fn(features, None, estimator_mode, {})
    prediction_tensors = list(spec.predictions.values()) if mode == "predict" else []
    fetches = list(prediction_tensors)
    loss_ops = set()
    if spec.loss is not None:
      fetches.append(spec.loss)
      loss_ops = _ancestors([spec.loss])
    if spec.train_op is not None:
      fetches.append(spec.train_op)
    for value_op, update_op in (spec.eval_metric_ops or {}).values():
      fetches.extend([value_op, update_op])
    # Heads and encoder are named by scope; loss and predictions are what lies between them and
    # the loss or prediction tensors. (An eval graph exposes no predictions: there, the softmax,
    # Viterbi and argmax count as metrics, which read them.)
    prediction_ops = _ancestors(prediction_tensors) - loss_ops
  rewritten = rewrite(graph, fetches, model.session_config(model_config, bf16_active=True))
  parts = ("encoder", "heads", "backward", "loss", "predictions",
           "optimizer" if mode == "train" else "metrics")
  report = {part: collections.Counter() for part in parts}
  for name, op_type in bfloat16_ops(rewritten).items():
    report[model_part(name, loss_ops, prediction_ops, mode)][op_type] += 1
  return {part: dict(sorted(counts.items())) for part, counts in report.items()}


def run_main() -> None:
  """`python -m bert_nlu.mixed_precision`: the bfloat16 ops of a model's graphs as JSON."""
  from absl import app, flags  # pylint: disable=g-import-not-at-top

  flags.DEFINE_string("bert_config_file", None, "bert_config.json of the encoder.")
  flags.DEFINE_bool("slot_crf", False, "The CRF slot decoder (else the softmax one).")
  flags.DEFINE_list("modes", list(MODES), "Graphs to rewrite: train, eval, predict.")
  flags.DEFINE_integer("num_hidden_layers", None, "Use only the first N encoder layers.")
  flags.mark_flag_as_required("bert_config_file")

  def main(argv):
    del argv
    from bert_nlu import config as config_lib  # pylint: disable=g-import-not-at-top
    from bert_nlu import cpu_features, encoder  # pylint: disable=g-import-not-at-top
    from bert_nlu.data.labels import LabelMaps  # pylint: disable=g-import-not-at-top
    from bert_nlu.tasks.nlu import NluTask  # pylint: disable=g-import-not-at-top
    flag_values = flags.FLAGS
    for mode in flag_values.modes:
      if mode not in MODES:
        raise app.UsageError(f"--modes: {mode!r} is not one of {', '.join(MODES)}")
    if not cpu_features.onednn_enabled():
      raise app.UsageError("TensorFlow's oneDNN kernels are off, so the bfloat16 rewrite would "
                           "convert nothing: run with TF_ENABLE_ONEDNN_OPTS=1")
    bert_config = encoder.load_bert_config(flag_values.bert_config_file)
    model_config = config_lib.ModelConfig(
        bert_config_file=flag_values.bert_config_file, vocab_file="", init_checkpoint="",
        slot_crf=flag_values.slot_crf, num_hidden_layers=flag_values.num_hidden_layers, bf16=True)
    label_maps = LabelMaps.from_labels(["a", "b"], [["O", "B-x", "I-x"]])
    task = NluTask(label_maps, slot_crf=flag_values.slot_crf)
    report = {mode: bfloat16_report(task, bert_config, model_config, config_lib.TrainConfig(),
                                    mode) for mode in flag_values.modes}
    print(json.dumps(report, indent=1, sort_keys=True))

  app.run(main)


if __name__ == "__main__":
  run_main()
