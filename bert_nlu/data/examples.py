"""The example types every reader produces and every later stage consumes."""

import dataclasses
from typing import List, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class NluExample:
  """One utterance with its intent and one BIO slot tag per word.

  Attributes:
    guid: unique id within the corpus, e.g. "dev-17".
    words: the utterance split on whitespace.
    slot_tags: one tag per word ("O", "B-artist", "I-artist", ...), len == len(words).
    intent: intent label (for ATIS after the multi-intent policy was applied).
    source: file the example was read from (for error messages).
    line: 1-based line (or record) number in `source`.
  """
  guid: str
  words: Tuple[str, ...]
  slot_tags: Tuple[str, ...]
  intent: str
  source: str = ""
  line: int = 0


@dataclasses.dataclass(frozen=True)
class SentencePairExample:
  """One sentence (or sentence pair) with its class label or similarity score (GLUE).

  Attributes:
    guid: unique id within the corpus, e.g. "dev-17".
    text_a: the first (or only) sentence, as in the file.
    text_b: the second sentence of a pair task, None for a single-sentence task.
    label: class label as the file spells it ("1", "entailment"); None for regression.
    score: similarity score of a regression task (STS-B, 0..5); None for classification.
    source: file the example was read from (for error messages).
    line: 1-based line number in `source`.
  """
  guid: str
  text_a: str
  text_b: Optional[str]
  label: Optional[str] = None
  score: Optional[float] = None
  source: str = ""
  line: int = 0


@dataclasses.dataclass(frozen=True)
class Split:
  """All examples of one split plus what reading them noticed.

  Attributes:
    name: "train", "dev", "test" (or another evaluation split, e.g. MNLI's "dev_mismatched").
    examples: in file order (`NluExample`s or `SentencePairExample`s).
    bad_bytes: number of undecodable bytes replaced by U+FFFD while reading.
    files: the files read (for fingerprints and messages).
  """
  name: str
  examples: Tuple
  bad_bytes: int
  files: Tuple[str, ...]

  def __len__(self) -> int:
    return len(self.examples)


@dataclasses.dataclass(frozen=True)
class NluSplit(Split):
  """A split of `NluExample`s."""

  def intents(self) -> List[str]:
    return [e.intent for e in self.examples]
