"""--bf16: the oneDNN bfloat16 rewrite in the session config, the float32 boundaries the model
keeps (loss, optimizer, softmax/CRF, metrics), the fallback to float32 on a CPU without bfloat16,
and the flag combination error.

This machine's CPU has no bfloat16 instructions and TensorFlow's oneDNN kernels are off by default
here, so the rewrite is forced in a subprocess started with TF_ENABLE_ONEDNN_OPTS=1 (the variable
is read once, when TensorFlow starts)."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from bert_nlu import cpu_features, io_utils, model, predict, train
from bert_nlu.hooks import latest_export
from bert_nlu.testing import tiny_training_config as make_config
from tensorflow.core.protobuf import rewriter_config_pb2

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPYC_WITHOUT_BF16 = "model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n"

# Runs in the subprocess: the bfloat16 ops of the tiny model's three graphs, and a toy
# graph with and without a float32 boundary after a matrix product.
_FORCED_REWRITE_SCRIPT = """
import json, sys
from bert_nlu import config as config_lib, cpu_features, encoder, mixed_precision, model
from bert_nlu.compat import tf
from bert_nlu.data.labels import LabelMaps
from bert_nlu.tasks.nlu import NluTask
assert cpu_features.onednn_enabled()
bert_config_file, slot_crf = sys.argv[1], sys.argv[2] == "crf"
model_config = config_lib.ModelConfig(bert_config_file=bert_config_file, vocab_file="",
                                      init_checkpoint="", slot_crf=slot_crf, bf16=True)
task = NluTask(LabelMaps.from_labels(["a", "b"], [["O", "B-x", "I-x"]]), slot_crf=slot_crf)
report = {mode: mixed_precision.bfloat16_report(task, encoder.load_bert_config(bert_config_file),
                                                model_config, config_lib.TrainConfig(), mode)
          for mode in ("train", "eval", "predict")}
toy = {}
for boundary in (False, True):
  graph = tf.Graph()
  with graph.as_default():
    x = tf.placeholder(tf.float32, [4, 8])
    product = tf.matmul(x, tf.ones([8, 8]))
    if boundary:
      product = mixed_precision.float32_boundary(product)
    scaled = tf.multiply(product, 0.5, name="scaled")
    total = tf.reduce_sum(scaled)  # the fetch (a fetched node is never converted)
  session = model.session_config(model_config, bf16_active=True)
  rewritten = mixed_precision.rewrite(graph, [total], session)
  toy[str(boundary)] = mixed_precision.bfloat16_ops(rewritten)
print(json.dumps({"report": report, "toy": toy}))
"""


@pytest.fixture(scope="module")
def forced_rewrite(tiny_bert_dir):
  """{"report": {mode: {part: {op: count}}}, "toy": ...} of the CRF model, rewritten
  with bf16 forced in a subprocess (a crash of TensorFlow there fails the test, not the suite)."""
  env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1", PYTHONPATH=REPO_DIR)
  process = subprocess.run(
      [sys.executable, "-c", _FORCED_REWRITE_SCRIPT,
       os.path.join(tiny_bert_dir, "bert_config.json"), "crf"],
      env=env, capture_output=True, text=True, timeout=600, check=False)
  if process.returncode != 0:
    pytest.fail(f"forcing the bfloat16 rewrite failed (exit {process.returncode}):\n"
                f"{process.stderr[-3000:]}")
  return json.loads(process.stdout.strip().splitlines()[-1])


def test_session_config_turns_on_the_onednn_bfloat16_rewrite(tiny_bert_dir, tiny_corpus_dir,
                                                             tmp_path):
  config = make_config(tiny_bert_dir, tiny_corpus_dir, str(tmp_path), model_fields={"bf16": True})
  assert model.session_config(config.model) is None  # requested but not active: float32
  options = model.session_config(config.model, bf16_active=True).graph_options.rewrite_options
  assert options.auto_mixed_precision_onednn_bfloat16 == rewriter_config_pb2.RewriterConfig.ON
  assert options.auto_mixed_precision != rewriter_config_pb2.RewriterConfig.ON


def test_forced_rewrite_runs_the_encoder_matrix_products_in_bfloat16(forced_rewrite):
  for mode in ("train", "eval", "predict"):
    encoder_ops = forced_rewrite["report"][mode]["encoder"]
    # 2 layers x (query, key, value, attention output, intermediate, output, scores, context).
    assert encoder_ops.get("Einsum") == 16, encoder_ops
    assert encoder_ops.get("Softmax") == 2 and encoder_ops.get("Erf") == 2  # attention, GELU
    assert forced_rewrite["report"][mode]["heads"].get("MatMul", 0) >= 2
  assert forced_rewrite["report"]["train"]["backward"].get("Einsum") == 32  # both gradients


def test_forced_rewrite_keeps_loss_optimizer_crf_softmax_and_metrics_float32(forced_rewrite):
  report = forced_rewrite["report"]
  assert report["train"]["loss"] == {} and report["train"]["optimizer"] == {}
  assert report["eval"]["loss"] == {}
  assert report["eval"]["metrics"] == {}  # with the softmax, Viterbi and argmax they read
  assert report["predict"]["predictions"] == {}


def test_float32_boundary_stops_the_rewrite_after_a_matrix_product(forced_rewrite):
  without, with_boundary = forced_rewrite["toy"]["False"], forced_rewrite["toy"]["True"]
  assert without.get("scaled") == "Mul"  # follows the bfloat16 MatMul: converted
  assert "scaled" not in with_boundary and "MatMul" in with_boundary.values()


def _fp16_and_bf16_flags(tiny_bert_dir, tiny_corpus_dir):
  from absl import flags  # pylint: disable=g-import-not-at-top
  if REPO_DIR not in sys.path:
    sys.path.insert(0, REPO_DIR)
  import run_bert_nlu  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  settings = {"data_dir": tiny_corpus_dir, "bert_dir": tiny_bert_dir, "fp16": True, "bf16": True}
  return run_bert_nlu, settings


def test_fp16_with_bf16_is_a_usage_error(tiny_bert_dir, tiny_corpus_dir):
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  run_bert_nlu, settings = _fp16_and_bf16_flags(tiny_bert_dir, tiny_corpus_dir)
  try:
    for name, value in settings.items():
      setattr(flags.FLAGS, name, value)
    with pytest.raises(app.UsageError, match="--fp16 and --bf16"):
      run_bert_nlu.build_run_config()
    flags.FLAGS.fp16 = False
    assert run_bert_nlu.build_run_config().model.bf16
  finally:
    for name in settings:
      flags.FLAGS[name].unparse()


def test_without_cpu_bf16_a_bf16_run_warns_once_and_trains_float32(tiny_bert_dir, tiny_corpus_dir,
                                                                   tmp_path, monkeypatch):
  warnings = []
  monkeypatch.setattr(cpu_features, "read_cpuinfo", lambda: EPYC_WITHOUT_BF16)
  monkeypatch.setattr(cpu_features, "_warned_fallback", False)
  monkeypatch.setattr(cpu_features.logging, "warning",
                      lambda message, *args: warnings.append(message % args))
  sessions = []
  real_session_config = model.session_config
  monkeypatch.setattr(train, "model_session_config",
                      lambda *args: sessions.append(real_session_config(*args)) or sessions[-1])
  runs = {}
  for name, bf16 in (("float32", False), ("bf16", True)):
    config = make_config(tiny_bert_dir, tiny_corpus_dir, str(tmp_path / name),
                         model_fields={"bf16": bf16}, num_train_epochs=2,
                         save_checkpoints_steps=10)
    runs[name] = train.run(config)
  assert len(warnings) == 1 and "no bfloat16 instructions" in warnings[0]
  assert sessions and all(session is None for session in sessions)  # no rewrite in any session
  precision = runs["bf16"]["precision"]
  assert precision["requested"] and not precision["active"]
  assert precision["cpu_model"] == "AMD EPYC" and precision["bf16_instructions"] == []
  assert runs["bf16"]["training"]["bf16_active"] is False
  saved = io_utils.read_json(str(tmp_path / "bf16" / train.RESULTS_FILE))
  assert saved["precision"] == precision
  # float32 training: the same seed gives the very same metrics as the float32 run.
  def without_timing(splits):  # prediction speed is wall-clock time, not a metric
    return {name: {k: v for k, v in values.items() if k != "prediction_examples_per_second"}
            for name, values in splits.items()}
  assert without_timing(runs["bf16"]["splits"]) == without_timing(runs["float32"]["splits"])
  # The export records the flag; the predictor decides again here (float32), without warning again.
  export = latest_export(str(tmp_path / "bf16"))
  predict_config = io_utils.read_json(os.path.join(export, predict.ASSETS_DIR,
                                                   train.PREDICT_CONFIG_FILE))
  assert predict_config["bf16"] is True
  predictor = predict.NluPredictor(export)
  assert predictor.bf16_support.requested and not predictor.bf16_support.active
  assert predictor.predict(["play adele"])[0]["intent"]["name"] in (
      "PlayMusic", "GetWeather", "BookRestaurant")
  assert len(warnings) == 1
  assert dataclasses.asdict(predictor.bf16_support)["reason"] == precision["reason"]
