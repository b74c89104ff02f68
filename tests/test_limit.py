"""--limit_data: COUNT examples per limited intent, chosen reproducibly; resampling to old counts."""

import collections

import pytest

from bert_nlu.data import limit
from bert_nlu.data.examples import NluExample, NluSplit, SentencePairExample, Split
from bert_nlu.errors import InputError

SIZES = {"PlayMusic": 30, "GetWeather": 20, "BookRestaurant": 7}


def _split():
  """57 examples, intents interleaved in file order, each example's guid unique."""
  examples = []
  remaining = dict(SIZES)
  while any(remaining.values()):
    for intent in SIZES:
      if remaining[intent]:
        remaining[intent] -= 1
        examples.append(NluExample(f"train-{len(examples)}", ("w",), ("O",), intent))
  return NluSplit("train", tuple(examples), 0, ("corpus/train/label",))


def _guids(split, intent):
  return [e.guid for e in split.examples if e.intent == intent]


def test_limits_count_and_keep_file_order():
  split = _split()
  limited = limit.limit_intents(split, [("PlayMusic", 5), ("GetWeather", 0)], seed=1)
  assert limit.intent_counts(limited) == {"BookRestaurant": 7, "PlayMusic": 5}
  assert _guids(limited, "BookRestaurant") == _guids(split, "BookRestaurant")
  kept = _guids(limited, "PlayMusic")
  assert set(kept) <= set(_guids(split, "PlayMusic"))
  positions = [int(g.split("-")[1]) for g in kept]
  assert positions == sorted(positions)
  everything = limit.limit_intents(split, [("BookRestaurant", 100)], seed=1)
  assert everything.examples == split.examples


def test_resampling_repeats_the_kept_examples_to_the_old_count():
  split = _split()
  resampled = limit.resample_limited(split, [("PlayMusic", 4), ("GetWeather", 0),
                                             ("BookRestaurant", 7)], seed=3)
  assert limit.intent_counts(resampled) == {"BookRestaurant": 7, "PlayMusic": 30}
  limited = limit.limit_intents(split, [("PlayMusic", 4), ("GetWeather", 0)], seed=3)
  play = collections.Counter(_guids(resampled, "PlayMusic"))
  assert set(play) == set(_guids(limited, "PlayMusic"))  # only the 4 kept examples, cycled
  assert sorted(play.values()) == [7, 7, 8, 8]  # 30 = 4 * 7 + 2
  assert resampled.examples[:len(limited.examples)] == limited.examples


def test_the_choice_is_reproducible_from_the_seed_and_nested():
  split = _split()

  def chosen(count, seed, other_limits=()):
    return _guids(limit.limit_intents(split, [("PlayMusic", count), *other_limits], seed),
                  "PlayMusic")

  assert chosen(5, seed=1) == chosen(5, seed=1)
  assert set(chosen(5, seed=1)) != set(chosen(5, seed=2))
  assert set(chosen(5, seed=1)) < set(chosen(12, seed=1))  # 5 of them are among the 12
  assert chosen(5, seed=1) == chosen(5, seed=1, other_limits=[("GetWeather", 3)])


def test_an_unknown_intent_names_itself_and_the_known_ones():
  with pytest.raises(InputError) as error:
    limit.limit_intents(_split(), [("PlayMusik", 3)], seed=1)
  message = str(error.value)
  assert "--limit_data" in message and "'PlayMusik'" in message
  assert "BookRestaurant, GetWeather, PlayMusic" in message
  assert message.startswith("corpus/train/label: ")


def _pair_split(size):
  examples = tuple(SentencePairExample(f"train-{i}", f"a{i}", f"b{i}", label=str(i % 2))
                   for i in range(size))
  return Split("train", examples, 0, ("glue/MRPC/train.tsv",))


def test_train_examples_subset_is_fixed_nested_in_file_order_and_keeps_the_type():
  split = _pair_split(100)
  small, large = limit.subset_examples(split, 10), limit.subset_examples(split, 40)
  assert type(small) is Split and len(small) == 10 and len(large) == 40
  indices = [int(e.guid.split("-")[1]) for e in large.examples]
  assert indices == sorted(indices) and len(set(indices)) == 40
  assert set(e.guid for e in small.examples) <= set(e.guid for e in large.examples)
  assert indices != list(range(40))  # a permutation, not the head of the file
  assert limit.subset_examples(split, 40).examples == large.examples
  nlu = limit.subset_examples(_split(), 12)
  assert type(nlu) is NluSplit and len(nlu) == 12
  assert limit.subset_examples(split, 1000).examples == split.examples


def test_train_examples_below_one_is_an_error():
  with pytest.raises(InputError, match="--train_examples must be >= 1"):
    limit.subset_examples(_pair_split(5), 0)


def test_one_intent_alone_resampled_to_its_own_count():
  """A stage-2 set of sequential fine-tuning: 4 PlayMusic sentences, every other intent COUNT 0,
  resampled to PlayMusic's original 30: no other intent comes back, only the 4 are repeated."""
  split = _split()
  alone = limit.resample_limited(split, [("PlayMusic", 4), ("GetWeather", 0),
                                         ("BookRestaurant", 0)], seed=5)
  assert limit.intent_counts(alone) == {"PlayMusic": 30}
  kept = _guids(limit.limit_intents(split, [("PlayMusic", 4)], seed=5), "PlayMusic")
  assert set(_guids(alone, "PlayMusic")) == set(kept) and len(kept) == 4
  unsampled = limit.limit_intents(split, [("PlayMusic", 4), ("GetWeather", 0),
                                          ("BookRestaurant", 0)], seed=5)
  assert _guids(unsampled, "PlayMusic") == kept
