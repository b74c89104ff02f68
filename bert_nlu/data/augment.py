"""Slot-substitution augmentation of a training split.

Each augmented copy of an utterance replaces every slot value (a BIO span) by a value of the same
slot type taken from ANOTHER training utterance, and re-tags the new words (B- on the first word,
I- on the rest). Intent, the words outside slots and their tags are unchanged:

  play  adele   on deezer            ->  play  the rolling stones  on deezer
  O     B-artist O  B-service            O     B-artist I-artist I-artist O  B-service

With probability `probability` per original example and copy, an augmented copy is added to the
split (the originals always stay). The draws come from one `random.Random(seed)` walked in a fixed
order, so the same split and seed give the same augmented split. The copies are drawn once, before
the TFRecords are written (their cache key covers the examples), not re-drawn every epoch.

Values are sampled in proportion to how often they occur (an inventory of occurrences, not of
distinct strings). With `same_intent`, only values seen with the example's own intent are drawn.
"""

import random
from typing import Dict, List, Sequence, Tuple

from bert_nlu.data.examples import NluExample, NluSplit
from bert_nlu.data.labels import OUTSIDE_TAG

# (start word, end word exclusive, slot type)
SlotSpan = Tuple[int, int, str]
# slot type, or (intent, slot type) with same_intent -> [(value words, index of its utterance)]
ValueInventory = Dict[object, List[Tuple[Tuple[str, ...], int]]]


def slot_spans(tags: Sequence[str]) -> List[SlotSpan]:
  """BIO spans of a tag sequence; an I- tag that does not continue a span of its type opens one.

  Returns:
    [(start, end, slot_type)] in order, `end` exclusive.
  """
  spans: List[SlotSpan] = []
  for position, tag in enumerate(tags):
    if tag == OUTSIDE_TAG or "-" not in tag:
      continue
    prefix, slot_type = tag.split("-", 1)
    continues = (prefix == "I" and spans and spans[-1][1] == position
                 and spans[-1][2] == slot_type)
    if continues:
      start, _, _ = spans[-1]
      spans[-1] = (start, position + 1, slot_type)
    else:
      spans.append((position, position + 1, slot_type))
  return spans


def _inventory_key(intent: str, slot_type: str, same_intent: bool):
  return (intent, slot_type) if same_intent else slot_type


def build_value_inventory(examples: Sequence[NluExample], same_intent: bool) -> ValueInventory:
  """Every slot value occurrence of `examples`, by slot type (and intent with `same_intent`)."""
  inventory: ValueInventory = {}
  for index, example in enumerate(examples):
    for start, end, slot_type in slot_spans(example.slot_tags):
      key = _inventory_key(example.intent, slot_type, same_intent)
      inventory.setdefault(key, []).append((tuple(example.words[start:end]), index))
  return inventory


def substitute_slot_values(example: NluExample, example_index: int, inventory: ValueInventory,
                           rng: random.Random, same_intent: bool, guid: str) -> NluExample:
  """A copy of `example` whose slot values are drawn from other utterances of the inventory.

  A span keeps its own value when the inventory holds no value of its type from another
  utterance.
  """
  words: List[str] = []
  tags: List[str] = []
  position = 0
  for start, end, slot_type in slot_spans(example.slot_tags):
    words.extend(example.words[position:start])
    tags.extend(example.slot_tags[position:start])
    candidates = inventory.get(_inventory_key(example.intent, slot_type, same_intent), [])
    value, source_index = candidates[rng.randrange(len(candidates))] if candidates else ((), -1)
    if source_index == example_index:  # one redraw among the other utterances' values
      others = [c for c in candidates if c[1] != example_index]
      value, source_index = others[rng.randrange(len(others))] if others else ((), -1)
    if source_index < 0:
      value = tuple(example.words[start:end])
    words.extend(value)
    tags.extend([f"B-{slot_type}"] + [f"I-{slot_type}"] * (len(value) - 1))
    position = end
  words.extend(example.words[position:])
  tags.extend(example.slot_tags[position:])
  return NluExample(guid=guid, words=tuple(words), slot_tags=tuple(tags), intent=example.intent,
                    source=example.source, line=example.line)


def augment_split(split: NluSplit, probability: float, seed: int, copies: int = 1,
                  same_intent: bool = False) -> NluSplit:
  """`split` followed by its slot-substituted copies.

  Args:
    split: the training split.
    probability: chance, per example and copy, that an augmented copy is added (0 = none).
    seed: seed of the draws (the run's --seed).
    copies: how many times each example is offered for augmentation.
    same_intent: draw only values seen with the example's own intent.

  Returns:
    A split with the originals first, then the added copies (guid "<guid>-aug<copy>").
  """
  if not 0 <= probability <= 1:
    raise ValueError(f"augmentation probability must be in [0, 1], got {probability}")
  if copies < 1:
    raise ValueError(f"augmentation copies must be >= 1, got {copies}")
  if probability == 0:
    return split
  inventory = build_value_inventory(split.examples, same_intent)
  rng = random.Random(seed)
  added = []
  for copy in range(copies):
    for index, example in enumerate(split.examples):
      if rng.random() >= probability or not slot_spans(example.slot_tags):
        continue
      added.append(substitute_slot_values(example, index, inventory, rng, same_intent,
                                          guid=f"{example.guid}-aug{copy}"))
  return NluSplit(name=split.name, examples=split.examples + tuple(added),
                  bad_bytes=split.bad_bytes, files=split.files)
