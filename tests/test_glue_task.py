"""GLUE task (bert_nlu/tasks/glue.py): heads, losses, whole-set collector, selection metrics, and
end to end through the one trainer (train.run) with export and raw-text prediction."""

import glob
import io
import json
import os

import numpy as np
import pytest

from bert_nlu import hooks, metrics, testing, train
from bert_nlu.compat import make_tokenizer, tf
from bert_nlu.data import glue
from bert_nlu.data.examples import SentencePairExample
from bert_nlu.errors import InputError
from bert_nlu.predict import (GluePredictor, load_predictor, pad_to_longest, predict_lines,
                              predictor_for_export)
from bert_nlu.tasks import glue as glue_task


def test_serving_batches_pad_every_row_to_the_longest_with_a_mask_of_real_pieces():
  input_ids, input_mask, segment_ids = pad_to_longest([[101, 7, 102], [101, 102]],
                                                      [[0, 0, 1], [0, 1]])
  np.testing.assert_array_equal(input_ids, [[101, 7, 102], [101, 102, 0]])
  np.testing.assert_array_equal(input_mask, [[1, 1, 1], [1, 1, 0]])
  np.testing.assert_array_equal(segment_ids, [[0, 0, 1], [0, 1, 0]])
  assert input_ids.dtype == input_mask.dtype == segment_ids.dtype == np.int32


def test_selection_metric_follows_the_glue_convention():
  chosen = {task: metrics.glue_selection_metric(task) for task in glue.GLUE_TASK_NAMES}
  assert chosen == {"CoLA": "matthews_corrcoef", "SST-2": "accuracy",
                    "MRPC": "accuracy_f1_mean", "STS-B": "pearson_spearman_mean",
                    "QQP": "accuracy_f1_mean", "MNLI": "accuracy", "QNLI": "accuracy",
                    "RTE": "accuracy", "WNLI": "accuracy", "SNLI": "accuracy"}
  for task in glue.GLUE_TASK_NAMES:  # the selection metric is one of the periodic dev metrics
    task_object = glue_task.GlueTask(glue.GlueLabels.for_task(task))
    assert task_object.selection_metric in task_object.eval_metric_names


def _run_graph(task, features, training=False):
  """Builds the head on a fixed pooled output and returns (loss, predictions) values."""
  with tf.Graph().as_default():
    tf.set_random_seed(0)
    pooled = tf.constant(np.random.RandomState(0).randn(4, 8).astype(np.float32))
    logits = task.build_logits(pooled, None, is_training=training, head_dropout=0.1,
                               initializer_range=0.5)
    tensors = {name: tf.constant(value) for name, value in features.items()}
    loss, parts = task.build_losses(logits, tensors)
    predictions = task.build_predictions(logits, tensors)
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      return session.run((loss, parts, logits, predictions))


def test_classification_head_loss_and_predictions_against_numpy():
  task = glue_task.GlueTask(glue.GlueLabels.for_task("MNLI"))
  features = {"label_id": np.array([0, 2, 1, 2], np.int32),
              "example_index": np.arange(4, dtype=np.int32)}
  loss, parts, logits, predictions = _run_graph(task, features)
  assert logits["logits"].shape == (4, 3)
  shifted = logits["logits"] - logits["logits"].max(axis=1, keepdims=True)
  probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
  expected = -np.mean(np.log(probabilities[np.arange(4), features["label_id"]]))
  assert loss == pytest.approx(expected, rel=1e-5)
  assert parts["classification_loss"] == pytest.approx(expected, rel=1e-5)
  np.testing.assert_allclose(predictions["probabilities"], probabilities, rtol=1e-5)
  np.testing.assert_array_equal(predictions["label_id"], probabilities.argmax(axis=1))
  np.testing.assert_array_equal(predictions["example_index"], features["example_index"])


def test_regression_head_is_one_score_with_mse_loss():
  task = glue_task.GlueTask(glue.GlueLabels.for_task("STS-B"))
  features = {"score": np.array([0.0, 1.5, 4.0, 5.0], np.float32)}
  loss, parts, logits, predictions = _run_graph(task, features)
  assert logits["score"].shape == (4,)
  expected = np.mean((logits["score"] - features["score"]) ** 2)
  assert loss == pytest.approx(expected, rel=1e-5)
  assert parts["regression_loss"] == pytest.approx(expected, rel=1e-5)
  np.testing.assert_allclose(predictions["score"], logits["score"])
  assert set(task.export_outputs(predictions)) == {"score"}


def _examples(task, size):
  return [SentencePairExample(f"dev-{i}", a, b, label=None if not glue.GLUE_LAYOUTS[task].labels
                              else t, score=float(t) if not glue.GLUE_LAYOUTS[task].labels
                              else None)
          for i, (a, b, t) in enumerate(testing.glue_examples(task, size, seed=1))]


def test_collector_is_whole_set_whatever_the_batch_order():
  examples = _examples("CoLA", 13)
  labels = glue.GlueLabels.for_task("CoLA")
  predicted = np.random.RandomState(2).randint(0, 2, size=13)
  collector = glue_task.WholeSetGlueMetrics(examples, labels)
  order = np.random.RandomState(3).permutation(13)
  for batch in (order[:5], order[5:9], order[9:]):  # batches of different sizes, shuffled
    collector.update(batch, predicted[batch])
  gold = [e.label for e in examples]
  pred = [labels.labels[i] for i in predicted]
  assert collector.result()["matthews_corrcoef"] == pytest.approx(
      metrics.matthews_correlation(gold, pred))
  assert collector.value("accuracy") == pytest.approx(metrics.accuracy(gold, pred))


def test_collector_rows_for_regression():
  examples = _examples("STS-B", 3)
  collector = glue_task.WholeSetGlueMetrics(examples, glue.GlueLabels.for_task("STS-B"))
  collector.update_batch({"example_index": np.array([2, 0, 1]),
                          "score": np.array([1.0, 2.0, 3.0], np.float32)})
  rows = collector.prediction_rows()
  assert [row["pred_score"] for row in rows] == [2.0, 3.0, 1.0]
  assert rows[0]["gold_score"] == examples[0].score and rows[0]["text_b"] == examples[0].text_b


# ---------------------------------------------------------------------------------------------
# End to end, one tiny training: MNLI-like pairs (3 classes, matched and mismatched dev), with
# sequences short enough that some pairs are truncated.

MAX_SEQ_LENGTH = 12
# The label is given by the verb of the second sentence (testing.glue_examples): book ->
# contradiction, play -> entailment, weather -> neutral.


@pytest.fixture(scope="module")
def mnli_run(tiny_bert_dir, tmp_path_factory):
  corpus = testing.make_glue_corpus(str(tmp_path_factory.mktemp("MNLI")), "MNLI", sizes=(
      ("train", 96), ("dev", 40), ("dev_mismatched", 30)))
  output_dir = str(tmp_path_factory.mktemp("mnli_run"))
  config = testing.tiny_run_config(
      tiny_bert_dir, corpus, output_dir, max_seq_length=MAX_SEQ_LENGTH, glue_task="mnli",
      num_train_epochs=8, save_checkpoints_steps=24, save_summary_steps=8, keep_checkpoint_max=2)
  return config, train.run(config)


def test_glue_training_learns_and_evaluates_both_dev_splits(mnli_run):
  config, results = mnli_run
  assert train.evaluation_splits(config) == ["dev", "dev_mismatched"]
  assert {name: split["num_examples"] for name, split in results["splits"].items()} == {
      "dev": 40, "dev_mismatched": 30}
  for split in results["splits"].values():
    counts = np.array(split["confusion_matrix"]["counts"])
    assert split["confusion_matrix"]["labels"] == ["contradiction", "entailment", "neutral"]
    majority = counts.sum(axis=1).max() / counts.sum()  # 3 classes: about 0.4
    # The tiny model learns "play" in the second sentence at once (entailment), while
    # contradiction vs neutral (book vs weather) needs more steps than a test should take.
    assert split["accuracy"] >= 0.7 and split["accuracy"] >= majority + 0.25
    assert split["accuracy"] == pytest.approx(np.trace(counts) / counts.sum())
  assert results["selected_by"] == "dev accuracy"
  best = hooks.read_best(config.output_dir)
  assert best["metric"] == "accuracy"
  assert results["splits"]["dev"]["accuracy"] == pytest.approx(best["value"], abs=1e-6)
  with open(os.path.join(config.output_dir, "eval_results.json")) as f:
    assert json.load(f)["splits"]["dev_mismatched"]["accuracy"] == pytest.approx(
        results["splits"]["dev_mismatched"]["accuracy"])
  rows = _prediction_rows(config, "dev_mismatched")
  assert len(rows) == 30 and {"gold_label", "pred_label", "probability"} <= set(rows[0])
  assert np.mean([r["gold_label"] == r["pred_label"] for r in rows]) == pytest.approx(
      results["splits"]["dev_mismatched"]["accuracy"])


def _prediction_rows(config, split):
  with open(os.path.join(config.output_dir, f"predictions_{split}.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_truncated_pairs_are_counted(mnli_run):
  config, results = mnli_run
  tokenizer = make_tokenizer(config.model.vocab_file, True)
  splits = glue.read_glue_splits(config.data.data_dir, "MNLI", ("dev", "dev_mismatched"))
  for name, split in splits.items():
    expected = sum(len(tokenizer.tokenize(e.text_a)) + len(tokenizer.tokenize(e.text_b)) + 3
                   > MAX_SEQ_LENGTH for e in split.examples)
    assert expected > 0
    assert results["splits"][name]["num_truncated"] == expected


def test_dev_metrics_reach_tensorboard(mnli_run):
  config, _ = mnli_run
  tags = set()
  for path in glob.glob(os.path.join(config.output_dir, "eval_dev", "events.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      tags.update(value.tag for value in event.summary.value)
  assert {"accuracy", "classification_loss"} <= tags


def test_predict_raw_pairs_from_the_export(mnli_run):
  config, _ = mnli_run
  export_dir = hooks.latest_export(config.output_dir)
  predictor = predictor_for_export(export_dir)
  assert isinstance(predictor, GluePredictor)
  assert isinstance(load_predictor([export_dir]), GluePredictor)  # the CLI's entry point
  with pytest.raises(InputError, match="only NLU exports can be predicted as an ensemble"):
    load_predictor([export_dir, export_dir])
  # Raw text through the export reproduces the Estimator's predictions of the best checkpoint.
  rows = _prediction_rows(config, "dev")
  results = predictor.predict([f"{row['text_a']}\t{row['text_b']}" for row in rows])
  assert [r["label"] for r in results] == [row["pred_label"] for row in rows]
  np.testing.assert_allclose([r["probability"] for r in results],
                             [row["probability"] for row in rows], atol=1e-5)
  long_a = "book " + " ".join(["hakkasan"] * 6)  # 1 + 6 * 3 word pieces
  results = predictor.predict(["weather in oslo\tplay adele now", f"{long_a}\tplay queen",
                               "no tab", ""])
  assert [r["label"] for r in results[:2]] == ["entailment", "entailment"]
  for result in results[:2]:
    assert result["probability"] == pytest.approx(max(result["probabilities"].values()))
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
  assert results[0]["truncated_pieces"] == 0
  assert results[1]["truncated_pieces"] == 19 + 2 + 3 - MAX_SEQ_LENGTH
  assert "error" in results[2] and results[3]["label"] is None
  out = io.StringIO()
  assert predict_lines(predictor, ["book nobu\tplay abba"], out=out) == 1
  assert json.loads(out.getvalue())["label"] == "entailment"
