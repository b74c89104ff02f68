"""The CRF slot decoder: runs over first pieces only, exact likelihood and Viterbi, end to end."""

import itertools

import numpy as np
import pytest

from bert_nlu import hooks, testing, train
from bert_nlu.compat import tf
from bert_nlu.data.labels import LabelMaps
from bert_nlu.predict import NluPredictor
from bert_nlu.tasks.nlu import NluTask, gather_first_pieces, scatter_word_values

LABELS = LabelMaps.from_labels(["a", "b"], [["O", "B-x", "I-x"]])
# [CLS] w1 w2## w2 [SEP] pad ; [CLS] w1 w2 w3 [SEP] pad ; [CLS] w1## ## [SEP] pad pad
FIRST_PIECE_MASK = np.array([[0, 1, 0, 1, 0, 0],
                             [0, 1, 1, 1, 0, 0],
                             [0, 1, 0, 0, 0, 0]], np.int32)
SLOT_IDS = np.array([[-1, 1, -1, 2, -1, -1],
                     [-1, 0, 1, 0, -1, -1],
                     [-1, 1, -1, -1, -1, -1]], np.int32)


def _random_problem(seed=0):
  rng = np.random.RandomState(seed)
  slot_logits = rng.randn(3, 6, 3).astype(np.float32)
  transitions = rng.randn(3, 3).astype(np.float32)
  return slot_logits, transitions


def _path_score(unary, transitions, path):
  return (sum(unary[i, t] for i, t in enumerate(path))
          + sum(transitions[a, b] for a, b in zip(path, path[1:])))


def _words(row_values, row_mask):
  return row_values[np.flatnonzero(row_mask)]


def test_gather_and_scatter_are_inverse_on_first_pieces():
  values = np.arange(18, dtype=np.int32).reshape(3, 6) + 100
  with tf.Graph().as_default(), tf.Session() as session:
    word_values, lengths, order = gather_first_pieces(tf.constant(values),
                                                      tf.constant(FIRST_PIECE_MASK))
    back = scatter_word_values(word_values, order)
    word_values, lengths, back = session.run([word_values, lengths, back])
  assert lengths.tolist() == [2, 3, 1]
  assert word_values.shape == (3, 3)  # padded to the longest row's word count
  for row in range(3):
    expected = _words(values[row], FIRST_PIECE_MASK[row])
    assert word_values[row, :lengths[row]].tolist() == expected.tolist()
    first = FIRST_PIECE_MASK[row] == 1
    assert back[row][first].tolist() == values[row][first].tolist()


def _crf_graph(slot_logits, transitions):
  task = NluTask(LABELS, slot_crf=True)
  logits = {"slot_logits": tf.constant(slot_logits), "slot_transitions": tf.constant(transitions)}
  loss = task._crf_slot_loss(logits, tf.constant(SLOT_IDS),  # pylint: disable=protected-access
                             tf.constant(FIRST_PIECE_MASK))
  decoded = task._crf_decode(logits, tf.constant(FIRST_PIECE_MASK))  # pylint: disable=protected-access
  return loss, decoded


@pytest.mark.parametrize("seed", [0, 1])
def test_crf_loss_is_the_exact_per_word_negative_log_likelihood(seed):
  slot_logits, transitions = _random_problem(seed)
  with tf.Graph().as_default(), tf.Session() as session:
    loss, _ = _crf_graph(slot_logits, transitions)
    loss = session.run(loss)
  total_nll, total_words = 0.0, 0
  for row in range(3):
    unary = _words(slot_logits[row], FIRST_PIECE_MASK[row])
    gold = _words(SLOT_IDS[row], FIRST_PIECE_MASK[row]).tolist()
    scores = [_path_score(unary, transitions, path)
              for path in itertools.product(range(3), repeat=len(unary))]
    total_nll += np.logaddexp.reduce(scores) - _path_score(unary, transitions, gold)
    total_words += len(gold)
  assert loss == pytest.approx(total_nll / total_words, rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_crf_decode_is_the_best_path_over_words_only(seed):
  slot_logits, transitions = _random_problem(seed)
  transitions[0, 2] = -50.0  # O -> I-x forbidden: the decoder must respect it
  with tf.Graph().as_default(), tf.Session() as session:
    _, decoded = _crf_graph(slot_logits, transitions)
    decoded = session.run(decoded)
  for row in range(3):
    unary = _words(slot_logits[row], FIRST_PIECE_MASK[row])
    best = max(itertools.product(range(3), repeat=len(unary)),
               key=lambda path: _path_score(unary, transitions, path))
    assert _words(decoded[row], FIRST_PIECE_MASK[row]).tolist() == list(best)
    assert all((a, b) != (0, 2) for a, b in zip(best, best[1:]))


@pytest.mark.parametrize("slot_crf", [False, True])
def test_predictions_decode_with_the_crf_only_when_asked(slot_crf):
  # Unary scores prefer I-x right after O; the transitions forbid O -> I-x.
  slot_logits = np.zeros([1, 4, 3], np.float32)
  slot_logits[0, 1] = [5.0, 0.0, 0.0]  # word 1: O
  slot_logits[0, 2] = [0.0, 2.0, 3.0]  # word 2: I-x by itself, B-x under the constraint
  transitions = np.zeros([3, 3], np.float32)
  transitions[0, 2] = -100.0
  first_piece_mask = np.array([[0, 1, 1, 0]], np.int32)
  task = NluTask(LABELS, slot_crf=slot_crf)
  with tf.Graph().as_default(), tf.Session() as session:
    logits = {"intent_logits": tf.zeros([1, 2]), "slot_logits": tf.constant(slot_logits)}
    if slot_crf:
      logits["slot_transitions"] = tf.constant(transitions)
    predictions = session.run(task.build_predictions(
        logits, {"first_piece_mask": tf.constant(first_piece_mask)}))
  expected = [0, 1] if slot_crf else [0, 2]
  assert predictions["slot_ids"][0, 1:3].tolist() == expected
  probabilities = np.exp(slot_logits[0, 2]) / np.exp(slot_logits[0, 2]).sum()
  assert predictions["slot_confidence"][0, 2] == pytest.approx(probabilities[expected[1]])


def test_crf_with_zero_transitions_decodes_like_argmax():
  slot_logits, transitions = _random_problem(3)
  with tf.Graph().as_default(), tf.Session() as session:
    _, decoded = _crf_graph(slot_logits, np.zeros_like(transitions))
    decoded = session.run(decoded)
  first = FIRST_PIECE_MASK == 1
  assert decoded[first].tolist() == slot_logits.argmax(-1)[first].tolist()


@pytest.fixture(scope="module")
def crf_run(tiny_bert_dir, tiny_corpus_dir, tmp_path_factory):
  output_dir = str(tmp_path_factory.mktemp("crf_run"))
  config = testing.tiny_training_config(tiny_bert_dir, tiny_corpus_dir, output_dir,
                                        model_fields={"slot_crf": True})
  return config, train.run(config)


def test_crf_run_learns_and_trains_its_transitions(crf_run):
  config, results = crf_run
  dev = results["splits"]["dev"]
  # 3 balanced intents, 3 slot types: chance is ~33% intent accuracy and ~0 slot F1 / frame
  # accuracy. (On this 150-utterance corpus, seeds move slot F1 between ~0.6 and 1.0 for both the
  # softmax and the CRF head.)
  assert dev["intent_accuracy"] >= 0.9
  assert dev["slot_f1"] >= 0.5
  assert dev["whole_frame_accuracy"] >= 0.5
  best = hooks.read_best(config.output_dir)
  transitions = tf.train.load_variable(best["checkpoint"], "slot_head/crf_transitions")
  assert transitions.shape == (len(_tiny_corpus_tags(config)),) * 2
  assert np.abs(transitions).max() > 1e-3  # started at zero; learned something


def _tiny_corpus_tags(config):  # pylint: disable=invalid-name
  return LabelMaps.load(f"{config.output_dir}/label_maps.json").slot_tags


def test_crf_export_predicts_spans_from_raw_text(crf_run):
  config, _ = crf_run
  predictor = NluPredictor(hooks.latest_export(config.output_dir))
  results = predictor.predict(["weather in paris", "play  adele queen please"])
  assert results[0]["intent"]["name"] == "GetWeather"
  assert {"slot": "city", "text": "paris"}.items() <= results[0]["slots"][0].items()
  for result in results:
    for span in result["slots"]:
      assert result["text"][span["start"]:span["end"]] == span["text"]
      assert 0.0 <= span["confidence"] <= 1.0
