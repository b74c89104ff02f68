"""Limited training data: COUNT examples of chosen intents, optionally resampled to their old share.

`limit_intents` keeps, for each limited intent, COUNT of its training examples chosen
reproducibly from the seed (COUNT=0 drops the intent). The choice is the first COUNT of a
permutation seeded by (seed, intent) alone, so it does not depend on the other limits, and a
smaller COUNT keeps a subset of a larger one's examples (10 of PlayMusic are among its 100).
`resample_limited` then repeats each limited intent's kept examples until the intent has as many
examples as before limiting (the kept examples in their chosen order, cycled), so that every
intent is seen about as often per epoch as without the limit. Dev and test are never limited.

`subset_examples` keeps COUNT examples of the whole training split, of any task (a GLUE subset for
studies that cannot afford all of it). They are the first COUNT of one fixed permutation that does
not depend on the run's seed, so every run with the same COUNT trains on the same examples (runs of
a sweep differ in their seeds, not in their data), and a smaller COUNT keeps a subset of a larger.
"""

import collections
import dataclasses
import random
from typing import Dict, Sequence, Tuple

from bert_nlu.data.examples import NluExample, NluSplit, Split
from bert_nlu.errors import InputError

Limits = Sequence[Tuple[str, int]]


def intent_counts(split: NluSplit) -> Dict[str, int]:
  """{intent: number of examples}, sorted by intent."""
  return dict(sorted(collections.Counter(split.intents()).items()))


def _chosen_examples(examples: Sequence[NluExample], intent: str, seed: int):
  """All examples of `intent` in the reproducible order the limit takes them from."""
  of_intent = [e for e in examples if e.intent == intent]
  random.Random(f"limit_data:{seed}:{intent}").shuffle(of_intent)
  return of_intent


def _check_limits(split: NluSplit, limits: Limits) -> None:
  known = intent_counts(split)
  for intent, count in limits:
    if intent not in known:
      raise InputError(split.files[0] if split.files else split.name,
                       f"--limit_data: intent {intent!r} is not in the {split.name} split; its "
                       f"intents are: {', '.join(known)}")
    if count < 0:
      raise InputError(split.name, f"--limit_data: {intent} COUNT must be >= 0, got {count}")


def limit_intents(split: NluSplit, limits: Limits, seed: int) -> NluSplit:
  """Keeps at most COUNT examples of each limited intent (all examples of the others).

  Args:
    split: the training split.
    limits: (intent, count) pairs; count 0 drops the intent, a count above the intent's size
      keeps all of it.
    seed: chooses the examples (with the intent's name; see module docstring).

  Returns:
    The split with the other examples in file order and each limited intent's kept examples in
    file order.

  Raises:
    InputError: an intent not in the split (naming the split's intents), or a negative count.
  """
  _check_limits(split, limits)
  kept = set()
  limited = dict(limits)
  for intent, count in limited.items():
    kept.update(id(e) for e in _chosen_examples(split.examples, intent, seed)[:count])
  examples = tuple(e for e in split.examples if e.intent not in limited or id(e) in kept)
  return NluSplit(name=split.name, examples=examples, bad_bytes=split.bad_bytes,
                  files=split.files)


def resample_limited(split: NluSplit, limits: Limits, seed: int) -> NluSplit:
  """`limit_intents`, then each limited intent with 0 < COUNT < its size repeated to its size.

  Returns:
    The limited split followed by the repeats: intent i with n_i examples limited to c_i gets
    n_i - c_i more, its c_i kept examples cycled in their chosen order. Dropped intents stay
    dropped; unlimited intents are unchanged.
  """
  limited_split = limit_intents(split, limits, seed)
  repeats = []
  for intent, count in limits:
    chosen = _chosen_examples(split.examples, intent, seed)
    kept = chosen[:count]
    if kept:
      repeats.extend(kept[i % len(kept)] for i in range(len(chosen) - len(kept)))
  return NluSplit(name=split.name, examples=limited_split.examples + tuple(repeats),
                  bad_bytes=split.bad_bytes, files=split.files)


SUBSET_PERMUTATION_KEY = "train_examples"


def subset_examples(split: Split, count: int) -> Split:
  """The first `count` examples of a fixed permutation of `split`, kept in file order.

  Args:
    split: the training split (NLU or GLUE examples).
    count: how many to keep; >= len(split) keeps all.

  Returns:
    A split of the same type holding the kept examples in file order.

  Raises:
    InputError: count < 1.
  """
  if count < 1:
    raise InputError(split.name, f"--train_examples must be >= 1, got {count}")
  order = list(range(len(split.examples)))
  random.Random(SUBSET_PERMUTATION_KEY).shuffle(order)
  kept = sorted(order[:count])
  return dataclasses.replace(split, examples=tuple(split.examples[i] for i in kept))
