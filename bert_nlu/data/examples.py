"""The example types every reader produces and every later stage consumes."""

import dataclasses
from typing import List, Tuple


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
class NluSplit:
  """All examples of one split plus what reading them noticed.

  Attributes:
    name: "train", "dev" or "test".
    examples: in file order.
    bad_bytes: number of undecodable bytes replaced by U+FFFD while reading.
    files: the files read (for fingerprints and messages).
  """
  name: str
  examples: Tuple[NluExample, ...]
  bad_bytes: int
  files: Tuple[str, ...]

  def __len__(self) -> int:
    return len(self.examples)

  def intents(self) -> List[str]:
    return [e.intent for e in self.examples]
