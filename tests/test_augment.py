"""Slot-substitution augmentation: alignment, same-type (and same-intent) values, reproducibility."""

import dataclasses

import pytest

from bert_nlu import testing, train
from bert_nlu.data import augment
from bert_nlu.data.examples import NluExample, NluSplit


def _example(index, intent, pairs):
  words = tuple(w for w, _ in pairs)
  tags = tuple(t for _, t in pairs)
  return NluExample(guid=f"train-{index}", words=words, slot_tags=tags, intent=intent,
                    source="train/seq.in", line=index + 1)


SPLIT = NluSplit(name="train", bad_bytes=0, files=(), examples=(
    _example(0, "PlayMusic", [("play", "O"), ("adele", "B-artist"), ("on", "O"),
                              ("deezer", "B-service")]),
    _example(1, "PlayMusic", [("play", "O"), ("the", "B-artist"), ("rolling", "I-artist"),
                              ("stones", "I-artist")]),
    _example(2, "AddToPlaylist", [("add", "O"), ("abba", "B-artist"), ("to", "O"), ("my", "O"),
                                  ("gym", "B-playlist"), ("mix", "I-playlist")]),
    _example(3, "GetWeather", [("weather", "O"), ("in", "O"), ("paris", "B-city")]),
    _example(4, "GetWeather", [("weather", "O"), ("in", "O"), ("new", "B-city"),
                               ("york", "I-city"), ("now", "O")]),
    _example(5, "PlayMusic", [("play", "O"), ("something", "O")]),
))


def _is_bio(tags):
  """Every I-x continues a B-x or I-x."""
  previous = "O"
  for tag in tags:
    if tag.startswith("I-") and previous[2:] != tag[2:]:
      return False
    previous = tag
  return True


def _values_by_type(examples, by_intent):
  values = {}
  for index, example in enumerate(examples):
    for start, end, slot_type in augment.slot_spans(example.slot_tags):
      key = (example.intent, slot_type) if by_intent else slot_type
      values.setdefault(key, set()).add((tuple(example.words[start:end]), index))
  return values


def test_slot_spans_reads_bio_and_opens_a_span_on_a_stray_inside_tag():
  assert augment.slot_spans(["O", "B-a", "I-a", "I-b", "O", "I-a", "B-a", "B-a"]) == [
      (1, 3, "a"), (3, 4, "b"), (5, 6, "a"), (6, 7, "a"), (7, 8, "a")]
  assert augment.slot_spans(["O", "O"]) == []


@pytest.mark.parametrize("same_intent", [False, True])
def test_copies_are_aligned_and_take_values_of_the_same_type_from_other_utterances(same_intent):
  augmented = augment.augment_split(SPLIT, probability=1.0, seed=3, copies=5,
                                    same_intent=same_intent)
  assert augmented.examples[:len(SPLIT)] == SPLIT.examples  # the originals stay, first
  copies = augmented.examples[len(SPLIT):]
  assert len(copies) == 5 * 5  # every example with a slot, 5 times; "play something" has none
  values = _values_by_type(SPLIT.examples, same_intent)
  originals = {e.guid: (i, e) for i, e in enumerate(SPLIT.examples)}
  changed = 0
  for copy in copies:
    index, original = originals[copy.guid.rsplit("-aug", 1)[0]]
    assert len(copy.words) == len(copy.slot_tags)
    assert copy.intent == original.intent
    assert _is_bio(copy.slot_tags)
    old_spans = augment.slot_spans(original.slot_tags)
    new_spans = augment.slot_spans(copy.slot_tags)
    assert [t for _, _, t in new_spans] == [t for _, _, t in old_spans]
    # Words outside the slots are the original's, in order.
    outside = lambda e: [w for w, t in zip(e.words, e.slot_tags) if t == "O"]  # noqa: E731
    assert outside(copy) == outside(original)
    for (start, end, slot_type), (old_start, old_end, _) in zip(new_spans, old_spans):
      value = tuple(copy.words[start:end])
      key = (copy.intent, slot_type) if same_intent else slot_type
      sources = {source for v, source in values[key] if v == value}
      others = {source for _, source in values[key]} - {index}
      if others:  # a value from another utterance of that type (and intent)
        assert sources - {index}, (copy, slot_type, value)
      else:  # nothing else to draw: the value stays
        assert value == tuple(original.words[old_start:old_end])
      changed += value != tuple(original.words[old_start:old_end])
  assert changed > 0


def test_same_intent_never_borrows_across_intents():
  augmented = augment.augment_split(SPLIT, probability=1.0, seed=0, copies=20, same_intent=True)
  for copy in augmented.examples[len(SPLIT):]:
    if copy.intent == "AddToPlaylist":  # the only AddToPlaylist artist is abba: nothing to draw
      assert "abba" in copy.words
    if copy.intent == "PlayMusic":
      assert "abba" not in copy.words


def test_same_seed_same_split_other_seed_other_split():
  first = augment.augment_split(SPLIT, probability=0.5, seed=11, copies=3)
  again = augment.augment_split(SPLIT, probability=0.5, seed=11, copies=3)
  other = augment.augment_split(SPLIT, probability=0.5, seed=12, copies=3)
  assert first == again
  assert first != other


def test_probability_zero_is_the_split_itself_and_bad_values_are_refused():
  assert augment.augment_split(SPLIT, probability=0.0, seed=1) is SPLIT
  with pytest.raises(ValueError, match="probability"):
    augment.augment_split(SPLIT, probability=1.5, seed=1)
  with pytest.raises(ValueError, match="copies"):
    augment.augment_split(SPLIT, probability=0.5, seed=1, copies=0)


def test_the_trainer_reads_an_augmented_train_split_and_leaves_dev_alone(tmp_path):
  corpus = testing.make_corpus(str(tmp_path / "corpus"))
  bert_dir = testing.make_tiny_bert(str(tmp_path / "bert"), testing.corpus_vocabulary())
  config = testing.tiny_run_config(bert_dir, corpus, str(tmp_path / "run"))
  plain_splits, plain_maps = train.read_corpus(config, ["dev"])
  config = dataclasses.replace(config, data=dataclasses.replace(
      config.data, augment_slot_substitution=1.0, augment_copies=2))
  splits, label_maps = train.read_corpus(config, ["dev"])
  assert len(splits["train"]) == 3 * len(plain_splits["train"])  # every tiny example has a slot
  assert splits["dev"] == plain_splits["dev"]
  assert label_maps == plain_maps
