"""The multi-intent corpus generator: aligned tags, joined labels, split-pure sources, seeds."""

import filecmp
import os

import pytest

from bert_nlu.data import multi_intent, readers
from bert_nlu.data.examples import NluExample
from bert_nlu.data.labels import intent_set
from bert_nlu.testing import make_corpus


def test_join_utterances_tags_connectives_o_and_joins_labels():
  first = NluExample("dev-1", ("play", "adele"), ("O", "B-artist"), "PlayMusic")
  second = NluExample("dev-7", ("weather", "in", "rome"), ("O", "O", "B-city"), "GetWeather")
  joined = multi_intent.join_utterances([first, second], ["and then"])
  assert joined.words == ("play", "adele", "and", "then", "weather", "in", "rome")
  assert joined.slot_tags == ("O", "B-artist", "O", "O", "O", "O", "B-city")
  assert joined.label == "PlayMusic#GetWeather"
  assert joined.sources == ("dev-1", "dev-7")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
  source = make_corpus(str(tmp_path_factory.mktemp("source")))
  output = str(tmp_path_factory.mktemp("generated"))
  record = multi_intent.generate_corpus(source, output, seed=3, heldout_fraction=0.25)
  return source, output, record


def test_every_split_is_built_from_its_own_source_split_only(generated):
  source, output, _ = generated
  source_splits = readers.read_seq_corpus(source)
  for name in multi_intent.SPLITS:
    guids = {e.guid for e in source_splits[name].examples}
    with open(os.path.join(output, name, multi_intent.SOURCE_FILE)) as f:
      used = [guid for line in f for guid in line.split()]
    assert used and set(used) <= guids, name


def test_generated_tags_are_aligned_and_labels_match_their_parts(generated):
  source, output, _ = generated
  by_guid = {e.guid: e for split in readers.read_seq_corpus(source).values()
             for e in split.examples}
  splits = readers.read_seq_corpus(output)
  sizes = set()
  for name, split in splits.items():
    with open(os.path.join(output, name, multi_intent.SOURCE_FILE)) as f:
      sources = [line.split() for line in f]
    for example, guids in zip(split.examples, sources):
      assert len(example.words) == len(example.slot_tags)
      parts = [by_guid[g] for g in guids]
      # The words and tags of every part appear in order, connectives in between are O.
      position = 0
      for index, part in enumerate(parts):
        if index:
          while example.words[position] in ("and", "then", "also") and (
              example.words[position:position + len(part.words)] != part.words):
            assert example.slot_tags[position] == "O"
            position += 1
        assert example.words[position:position + len(part.words)] == part.words
        assert example.slot_tags[position:position + len(part.words)] == part.slot_tags
        position += len(part.words)
      assert position == len(example.words)
      assert example.intent == "#".join(p.intent for p in parts)
      assert len(intent_set(example.intent)) == len(parts)  # different intents
      sizes.add(len(parts))
  assert sizes == {1, 2, 3}


def test_heldout_combinations_never_occur_in_train(generated):
  _, output, record = generated
  heldout = {frozenset(c.split("#")) for c in record["heldout_combinations"]}
  assert heldout
  splits = readers.read_seq_corpus(output)
  assert not {intent_set(l) for l in splits["train"].intents()} & heldout
  assert {intent_set(l) for l in splits["test"].intents()} & heldout


def test_same_seed_same_bytes_other_seed_other_corpus(generated, tmp_path):
  source, output, _ = generated
  again, other = str(tmp_path / "again"), str(tmp_path / "other")
  multi_intent.generate_corpus(source, again, seed=3, heldout_fraction=0.25)
  multi_intent.generate_corpus(source, other, seed=4, heldout_fraction=0.25)
  for name in multi_intent.SPLITS:
    for file_name in ("seq.in", "seq.out", "label", "source"):
      assert filecmp.cmp(os.path.join(output, name, file_name),
                         os.path.join(again, name, file_name), shallow=False)
  assert not filecmp.cmp(os.path.join(output, "train", "seq.in"),
                         os.path.join(other, "train", "seq.in"), shallow=False)
