"""A reproducible multi-intent corpus built from a single-intent one (SNIPS, ATIS, ...).

  python -m bert_nlu.data.multi_intent --source=../shared/data/snips --output=DIR --seed=0

Each output split is built ONLY from the matching source split (train from train, dev from dev,
test from test), so no source utterance crosses splits. An output utterance joins 1 to
`max_intents` source utterances whose intent sets are disjoint, with a connective between them
("and", "and then", "also", tagged O); their tags are joined the same way and their labels
joined with "#" (ATIS's own "a#b" labels count as their set of intents). A fraction of the
possible intent combinations (`heldout_fraction`, drawn with the seed) never appears in train:
dev and test utterances with them measure how a model does on combinations it never saw.

Writes <output>/{train,dev,test}/{seq.in,seq.out,label,source} (source: the source guids joined,
one line per utterance) and <output>/generation.json (arguments and held-out combinations).
Same source, arguments and seed -> byte-identical output.
"""

import dataclasses
import itertools
import os
import random
from typing import Dict, FrozenSet, List, Sequence, Set, Tuple

from bert_nlu import io_utils
from bert_nlu.data import readers
from bert_nlu.data.examples import NluExample
from bert_nlu.data.labels import OUTSIDE_TAG, intent_set, join_intent_set

CONNECTIVES = ("and", "and then", "also")
SPLITS = ("train", "dev", "test")
SOURCE_FILE = "source"
GENERATION_FILE = "generation.json"
_MAX_DRAWS = 1000


@dataclasses.dataclass(frozen=True)
class JoinedUtterance:
  """One generated utterance: words, one tag per word, "#"-joined label, source guids."""
  words: Tuple[str, ...]
  slot_tags: Tuple[str, ...]
  label: str
  sources: Tuple[str, ...]


def join_utterances(parts: Sequence[NluExample], connectives: Sequence[str]) -> JoinedUtterance:
  """Joins examples with connectives (len(parts) - 1 of them), tagged O; labels joined by "#".

  Args:
    parts: the source examples, in order.
    connectives: the connective before parts[1], parts[2], ... (each may be several words).

  Returns:
    The joined utterance (label: the parts' labels joined with "#", in order).
  """
  words, tags = list(parts[0].words), list(parts[0].slot_tags)
  for connective, part in zip(connectives, parts[1:]):
    connective_words = connective.split()
    words += connective_words + list(part.words)
    tags += [OUTSIDE_TAG] * len(connective_words) + list(part.slot_tags)
  return JoinedUtterance(words=tuple(words), slot_tags=tuple(tags),
                         label="#".join(part.intent for part in parts),
                         sources=tuple(part.guid for part in parts))


def possible_combinations(intents: Sequence[str], max_intents: int) -> List[FrozenSet[str]]:
  """Every set of 2..max_intents atomic intents, in a fixed (sorted) order."""
  atoms = sorted(set(intents))
  return [frozenset(c) for size in range(2, max_intents + 1)
          for c in itertools.combinations(atoms, size)]


def heldout_combinations(train_intents: Sequence[str], max_intents: int, fraction: float,
                         rng: random.Random) -> Set[FrozenSet[str]]:
  """A seeded `fraction` of the multi-intent combinations of the train intents' atoms."""
  atoms = {atom for label in train_intents for atom in intent_set(label)}
  combinations = possible_combinations(sorted(atoms), max_intents)
  return set(rng.sample(combinations, int(round(fraction * len(combinations)))))


def generate_split(examples: Sequence[NluExample], num_utterances: int, max_intents: int,
                   excluded: Set[FrozenSet[str]], rng: random.Random) -> List[JoinedUtterance]:
  """Draws `num_utterances` joined utterances from one split's examples.

  The number of parts is uniform in 1..max_intents; each part is a uniformly drawn example whose
  intents are disjoint from those already chosen; a draw whose intent set is in `excluded` is
  redrawn. A part count that the split cannot fill (too few intents) falls back to fewer parts.
  """
  utterances = []
  for _ in range(num_utterances):
    num_parts = rng.randint(1, max_intents)
    for _ in range(_MAX_DRAWS):
      parts, intents = [], set()
      for _ in range(num_parts):
        candidates = [e for e in rng.sample(examples, min(len(examples), 50))
                      if not intent_set(e.intent) & intents]
        if not candidates:
          break
        parts.append(candidates[0])
        intents |= intent_set(candidates[0].intent)
      if len(parts) == num_parts and frozenset(intents) not in excluded:
        break
      num_parts = max(1, num_parts - (len(parts) < num_parts))
    connectives = [rng.choice(CONNECTIVES) for _ in parts[1:]]
    utterances.append(join_utterances(parts, connectives))
  return utterances


def write_split(utterances: Sequence[JoinedUtterance], split_dir: str) -> None:
  """seq.in, seq.out, label and source files (atomic writes)."""
  os.makedirs(split_dir, exist_ok=True)
  columns = {
      readers.SEQ_IN_FILE: [" ".join(u.words) for u in utterances],
      readers.SEQ_OUT_FILE: [" ".join(u.slot_tags) for u in utterances],
      readers.LABEL_FILE: [u.label for u in utterances],
      SOURCE_FILE: [" ".join(u.sources) for u in utterances],
  }
  for name, lines in columns.items():
    io_utils.atomic_write_text(os.path.join(split_dir, name), "".join(l + "\n" for l in lines))


def generate_corpus(source_dir: str, output_dir: str, seed: int = 0, max_intents: int = 3,
                    heldout_fraction: float = 0.2, size_ratio: float = 1.0) -> Dict:
  """Builds the multi-intent corpus of `source_dir` in `output_dir` (see the module docstring).

  Args:
    source_dir: a seq.in/seq.out/label corpus with train, dev (or valid) and test.
    output_dir: where the corpus goes.
    seed: the one seed of every random choice.
    max_intents: at most this many utterances (intents) are joined.
    heldout_fraction: share of the 2..max_intents combinations kept out of train.
    size_ratio: each output split has round(size_ratio * source split size) utterances.

  Returns:
    The generation record written to generation.json.
  """
  rng = random.Random(seed)
  splits = readers.read_seq_corpus(source_dir, splits=SPLITS, multi_intent_policy="atomic")
  heldout = heldout_combinations(splits["train"].intents(), max_intents, heldout_fraction, rng)
  sizes = {}
  for name in SPLITS:
    examples = list(splits[name].examples)
    num_utterances = int(round(size_ratio * len(examples)))
    utterances = generate_split(examples, num_utterances, max_intents,
                                heldout if name == "train" else set(), rng)
    write_split(utterances, os.path.join(output_dir, name))
    sizes[name] = num_utterances
  record = {"source": os.path.abspath(source_dir), "seed": seed, "max_intents": max_intents,
            "heldout_fraction": heldout_fraction, "size_ratio": size_ratio,
            "connectives": list(CONNECTIVES), "sizes": sizes,
            "heldout_combinations": sorted(join_intent_set(c) for c in heldout)}
  io_utils.atomic_write_json(os.path.join(output_dir, GENERATION_FILE), record)
  return record


def run_main() -> None:
  """`python -m bert_nlu.data.multi_intent --source=DIR --output=DIR [--seed=0]`."""
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("source", None, "Source corpus (seq.in/seq.out/label; train, dev, test).")
  flags.DEFINE_string("output", None, "Output corpus directory.")
  flags.DEFINE_integer("seed", 0, "Seed of every random choice.")
  flags.DEFINE_integer("max_intents", 3, "Join at most this many utterances (>= 2).")
  flags.DEFINE_float("heldout_fraction", 0.2, "Share of the intent combinations never in train.")
  flags.DEFINE_float("size_ratio", 1.0, "Output split size / source split size.")
  flags.mark_flags_as_required(["source", "output"])

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    values = flags.FLAGS
    if values.max_intents < 2:
      raise app.UsageError(f"--max_intents must be >= 2, got {values.max_intents}")
    if not 0 <= values.heldout_fraction < 1:
      raise app.UsageError(f"--heldout_fraction must be in [0, 1), got {values.heldout_fraction}")
    if not values.size_ratio > 0:
      raise app.UsageError(f"--size_ratio must be > 0, got {values.size_ratio}")
    record = generate_corpus(values.source, values.output, values.seed, values.max_intents,
                             values.heldout_fraction, values.size_ratio)
    print(f"{values.output}: {record['sizes']}, {len(record['heldout_combinations'])} "
          "combinations held out of train")
    return 0

  app.run(main)


if __name__ == "__main__":
  run_main()
