"""--hub_module: a TF-Hub encoder built with PLAIN KERAS code (tests/conftest.py
`write_plain_keras_encoder`, not bert_nlu.hub_export), with only the public interface (dict inputs input_word_ids / input_mask / input_type_ids, dict outputs
pooled_output / sequence_output / encoder_outputs, a vocab_file asset, a do_lower_case variable),
fine-tuned end to end through run_bert_nlu.py: train, dev evaluation, best export, resume,
evaluation of the best checkpoint, predict; its variables train. The same on 2 CPU replicas
(--distribution=mirrored), NLU and GLUE. A module written by bert_nlu.hub_export carries
BertModel's variable names, so --train_layers_from freezes its lower layers."""

import contextlib
import io
import json
import os
import shutil
import sys

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest
import tensorflow as tf

from bert_nlu import hooks, hub_module, predict, testing

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_DIR not in sys.path:
  sys.path.insert(0, REPO_DIR)
import run_bert_nlu  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS


def run_main(*args):
  """run_bert_nlu.py's main with `args`; returns (exit code, stdout)."""
  stdout = io.StringIO()
  with flagsaver.flagsaver(), contextlib.redirect_stdout(stdout):
    FLAGS.unparse_flags()
    FLAGS(["run_bert_nlu.py", *args])
    code = run_bert_nlu.main(["run_bert_nlu.py"])
  return code, stdout.getvalue()


def module_weights(path):
  module = hub_module._import_hub().load(path)  # pylint: disable=protected-access
  return {v.name.split(":")[0]: v.numpy() for v in module.trainable_variables}


@pytest.fixture(scope="module")
def module_copy(plain_keras_hub_module, tmp_path_factory):
  """A copy of the plain-Keras module that a test may delete."""
  path = str(tmp_path_factory.mktemp("module_copy") / "encoder")
  shutil.copytree(plain_keras_hub_module, path)
  return path


@pytest.fixture(scope="module")
def fine_tuned(module_copy, tiny_corpus_dir, tmp_path_factory):
  """2 epochs (19 steps), then resumed to 4 epochs (38 steps); dev every 10 steps; predicts 2
  utterances."""
  output_dir = str(tmp_path_factory.mktemp("hub_run"))
  predict_input = os.path.join(output_dir, "..", "utterances.txt")
  with open(predict_input, "w", encoding="utf-8") as f:
    f.write("play adele\nweather in paris please\n")
  common = [f"--hub_module={module_copy}", f"--data_dir={tiny_corpus_dir}",
            f"--output_dir={output_dir}", "--max_seq_length=16", "--train_batch_size=16",
            "--learning_rate=5e-3", "--save_checkpoints_steps=10", "--save_summary_steps=5",
            "--seed=7", "--eval_on_test"]
  first = run_main(*common, "--num_train_epochs=2")
  resumed = run_main(*common, "--num_train_epochs=4", "--run_predict",
                     f"--predict_input={predict_input}")
  return output_dir, first, resumed


def test_the_module_describes_itself_through_the_public_interface(plain_keras_hub_module):
  info = hub_module.describe(plain_keras_hub_module)
  assert (info.hidden_size, info.num_hidden_layers) == (16, 2)
  assert info.do_lower_case and info.vocab_size == len(testing.corpus_vocabulary())
  assert os.path.basename(info.vocab_file) == "plain_vocab.txt"
  assert not info.google_layout


def test_fine_tunes_end_to_end(fine_tuned):
  output_dir, (first_code, _), (resumed_code, stdout) = fine_tuned
  assert first_code == 0 and resumed_code == 0
  with open(os.path.join(output_dir, "eval_results.json"), encoding="utf-8") as f:
    results = json.load(f)
  assert results["config"]["model"]["hub_module"]
  assert results["config"]["model"]["bert_config_file"] == ""
  # (38 steps of a toy encoder: the point is the path, not the accuracy.)
  assert set(results["splits"]) == {"dev", "test"}
  assert results["splits"]["dev"]["num_examples"] == 30
  best = hooks.read_best(output_dir)
  assert results["checkpoint"] == best["checkpoint"]
  assert os.path.isfile(os.path.join(best["saved_model"], "saved_model.pb"))
  predictions = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
  assert [p["text"] for p in predictions] == ["play adele", "weather in paris please"]
  intents = {"PlayMusic", "GetWeather", "BookRestaurant"}
  assert all(p["intent"]["name"] in intents for p in predictions)


def test_resume_continues_from_the_last_checkpoint(fine_tuned):
  output_dir, _, _ = fine_tuned
  with open(os.path.join(output_dir, "eval_results.json"), encoding="utf-8") as f:
    training = json.load(f)["training"]
  assert training["num_train_steps"] == 38  # ceil(150 * 4 / 16)
  assert training["steps_run_this_session"] == 38 - 19  # the first run stopped at step 19
  assert tf.train.latest_checkpoint(output_dir).endswith("model.ckpt-38")


def test_the_module_variables_train_and_are_checkpointed(fine_tuned, plain_keras_hub_module):
  output_dir, _, _ = fine_tuned
  initial = module_weights(plain_keras_hub_module)
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(output_dir))
  trained = {name: reader.get_tensor(f"{hub_module.SCOPE}/{name}") for name in initial}
  for name, value in initial.items():
    assert trained[name].shape == value.shape
    assert np.abs(trained[name] - value).max() > 1e-4, f"{name} did not train"
  assert reader.has_tensor(f"{hub_module.SCOPE}/transformer_0/kernel/adam_m")


def test_an_exported_checkpoint_freezes_its_lower_layers_by_name(tiny_hub_module, tiny_bert_dir,
                                                                 tiny_corpus_dir, tmp_path):
  output_dir = str(tmp_path / "run")
  code, _ = run_main(f"--hub_module={tiny_hub_module}", f"--data_dir={tiny_corpus_dir}",
                     f"--output_dir={output_dir}", "--max_seq_length=16",
                     "--train_batch_size=16", "--learning_rate=1e-2", "--num_train_epochs=1",
                     "--save_checkpoints_steps=10", "--train_layers_from=1", "--norun_eval")
  assert code == 0
  initial = tf.train.load_checkpoint(os.path.join(tiny_bert_dir, "bert_model.ckpt"))
  trained = tf.train.load_checkpoint(tf.train.latest_checkpoint(output_dir))
  for name, _ in tf.train.list_variables(os.path.join(tiny_bert_dir, "bert_model.ckpt")):
    if not name.startswith("bert/"):
      continue
    change = np.abs(trained.get_tensor(name) - initial.get_tensor(name)).max()
    if name.startswith(("bert/embeddings/", "bert/encoder/layer_0/")):
      assert change == 0, f"{name} is frozen by --train_layers_from=1 but changed"
    else:
      assert change > 0, f"{name} should train"


def test_the_export_needs_no_module_once_written(fine_tuned, module_copy):
  output_dir, _, _ = fine_tuned
  shutil.rmtree(module_copy)
  predictor = predict.predictor_for_export(hooks.latest_export(output_dir))
  [row] = predictor.predict(["book nobu please"])
  assert row["intent"]["name"] in {"PlayMusic", "GetWeather", "BookRestaurant"}


@pytest.fixture(scope="module")
def replicated(plain_keras_hub_module, tiny_corpus_dir, tmp_path_factory):
  """2 CPU replicas (global batch 16): 1 epoch (10 steps), then resumed to 2 epochs (19 steps);
  the checkpoint evaluator evaluates every checkpoint (every 10 steps) on one device."""
  output_dir = str(tmp_path_factory.mktemp("hub_replicated"))
  common = [f"--hub_module={plain_keras_hub_module}", f"--data_dir={tiny_corpus_dir}",
            f"--output_dir={output_dir}", "--max_seq_length=16", "--train_batch_size=16",
            "--learning_rate=5e-3", "--save_checkpoints_steps=10", "--save_summary_steps=5",
            "--seed=7", "--distribution=mirrored", "--devices=/cpu:0,/cpu:1"]
  first = run_main(*common, "--num_train_epochs=1")
  resumed = run_main(*common, "--num_train_epochs=2")
  return output_dir, first, resumed


def test_two_replicas_fine_tune_resume_and_export_the_best(replicated, plain_keras_hub_module):
  output_dir, (first_code, _), (resumed_code, _) = replicated
  assert first_code == 0 and resumed_code == 0
  with open(os.path.join(output_dir, "eval_results.json"), encoding="utf-8") as f:
    results = json.load(f)
  assert results["config"]["train"]["distribution"] == "mirrored"
  assert results["training"]["num_train_steps"] == 19  # ceil(150 * 2 / 16): the global batch
  assert results["training"]["steps_run_this_session"] == 19 - 10
  assert results["splits"]["dev"]["num_examples"] == 30  # the whole set, on one device
  best = hooks.read_best(output_dir)
  assert results["checkpoint"] == best["checkpoint"]
  assert os.path.isfile(os.path.join(best["saved_model"], "saved_model.pb"))
  checkpoint = tf.train.latest_checkpoint(output_dir)
  assert checkpoint.endswith("model.ckpt-19")
  names = {name for name, _ in tf.train.list_variables(checkpoint)}
  assert not [name for name in names if "replica_" in name]  # one entry per variable
  reader = tf.train.load_checkpoint(checkpoint)
  for name, value in module_weights(plain_keras_hub_module).items():
    assert np.abs(reader.get_tensor(f"{hub_module.SCOPE}/{name}") - value).max() > 1e-4, name


def test_a_glue_task_fine_tunes_on_two_replicas(plain_keras_hub_module, tmp_path):
  corpus = testing.make_glue_corpus(str(tmp_path / "MRPC"), "MRPC",
                                    sizes=(("train", 64), ("dev", 24)))
  output_dir = str(tmp_path / "run")
  code, _ = run_main(f"--hub_module={plain_keras_hub_module}", "--task=glue", "--glue_task=MRPC",
                     f"--data_dir={corpus}", f"--output_dir={output_dir}", "--max_seq_length=16",
                     "--train_batch_size=16", "--num_train_epochs=1",
                     "--save_checkpoints_steps=4", "--distribution=mirrored",
                     "--devices=/cpu:0,/cpu:1")
  assert code == 0
  with open(os.path.join(output_dir, "eval_results.json"), encoding="utf-8") as f:
    results = json.load(f)
  assert results["config"]["model"]["hub_module"] == plain_keras_hub_module
  assert results["splits"]["dev"]["num_examples"] == 24
  counts = np.array(results["splits"]["dev"]["confusion_matrix"]["counts"])
  assert counts.sum() == 24
  assert results["splits"]["dev"]["accuracy"] == pytest.approx(np.trace(counts) / 24)
  best = hooks.read_best(output_dir)
  assert os.path.isfile(os.path.join(best["saved_model"], "saved_model.pb"))
