"""Data statistics: `python -m bert_nlu.data.stats --data_dir=... --vocab_file=...`.

Prints per split: examples, intents, slot tags, word-piece length percentiles (with [CLS]/[SEP]),
examples truncated at --max_seq_length, undecodable bytes replaced while reading, and labels
absent from train.

The trainer uses `length_report` before training: per split, how many examples a max_seq_length
truncates and how many words they lose, the lengths that cover 100% and 99.9% of the examples
(`truncation_warning`), and `covering_max_seq_length` for `--max_seq_length=auto`.
"""

import dataclasses
import math
import sys
from typing import Dict, List, Optional, Sequence

import pandas as pd

from bert_nlu.compat import make_tokenizer
from bert_nlu.data import readers
from bert_nlu.data.examples import NluSplit
from bert_nlu.data.features import align_words, word_pieces
from bert_nlu.data.tfrecords import length_percentiles

PERCENTILES = (50, 90, 95, 99, 100)


@dataclasses.dataclass(frozen=True)
class LengthReport:
  """Word-piece lengths of one split against one max_seq_length.

  Attributes:
    split: split name.
    pieces_per_word: per example, the number of word pieces of each word.
    max_seq_length: the length truncated at.
  """
  split: str
  pieces_per_word: Sequence[Sequence[int]]
  max_seq_length: int

  @property
  def lengths(self) -> List[int]:
    """[examples] full length of each example in pieces, with [CLS] and [SEP]."""
    return [sum(counts) + 2 for counts in self.pieces_per_word]

  def _words_kept(self) -> List[int]:
    return [align_words([["x"] * n for n in counts], self.max_seq_length)[2]
            for counts in self.pieces_per_word]

  @property
  def num_truncated(self) -> int:
    """Examples that lose words at max_seq_length."""
    return sum(kept < len(counts)
               for kept, counts in zip(self._words_kept(), self.pieces_per_word))

  @property
  def words_lost(self) -> int:
    """Words lost to max_seq_length over the split."""
    return sum(len(counts) - kept
               for kept, counts in zip(self._words_kept(), self.pieces_per_word))

  def at(self, max_seq_length: int) -> "LengthReport":
    """The same split against another max_seq_length (no tokenizing)."""
    return dataclasses.replace(self, max_seq_length=max_seq_length)

  def covering_length(self, fraction: float) -> int:
    """The smallest length that holds at least `fraction` of the examples whole."""
    return covering_length(self.lengths, fraction)


def covering_length(lengths: Sequence[int], fraction: float) -> int:
  """The smallest L with at least `fraction` of `lengths` <= L (0 for no lengths)."""
  ordered = sorted(lengths)
  return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] if ordered else 0


def length_report(split: NluSplit, tokenizer, max_seq_length: int) -> LengthReport:
  """Tokenizes every example of `split` once; see `LengthReport`."""
  return LengthReport(
      split=split.name, max_seq_length=max_seq_length,
      pieces_per_word=tuple(tuple(len(p) for p in word_pieces(tokenizer, example.words))
                            for example in split.examples))


def truncation_warning(reports: Sequence[LengthReport]) -> Optional[str]:
  """One message for the splits that lose words at their max_seq_length, None if none does.

  Example: "max_seq_length=16 truncates train: 3 of 150 examples (7 words lost); dev: 1 of 30
  examples (2 words lost). A length of 24 covers 100% of these examples, 22 covers 99.9%
  (--max_seq_length=auto picks the first)."
  """
  truncating = [r for r in reports if r.num_truncated]
  if not truncating:
    return None
  lengths = [length for r in reports for length in r.lengths]
  parts = "; ".join(f"{r.split}: {r.num_truncated} of {len(r.lengths)} examples "
                    f"({r.words_lost} words lost)" for r in truncating)
  return (f"max_seq_length={truncating[0].max_seq_length} truncates {parts}. A length of "
          f"{covering_length(lengths, 1.0)} covers 100% of these examples, "
          f"{covering_length(lengths, 0.999)} covers 99.9% (--max_seq_length=auto picks the "
          "first, up to the model's position limit).")


def covering_max_seq_length(reports: Sequence[LengthReport], position_limit: int) -> int:
  """The smallest max_seq_length that truncates no example of `reports`, capped at the limit."""
  longest = max((l for r in reports for l in r.lengths), default=3)
  return max(3, min(longest, position_limit))


def split_statistics(split: NluSplit, train: NluSplit, tokenizer,
                     max_seq_length: int) -> Dict:
  """Statistics of one split (labels compared against the training split)."""
  report = length_report(split, tokenizer, max_seq_length)
  lengths, truncated = report.lengths, report.num_truncated
  intents, tags = readers.label_inventory(split)
  train_intents, train_tags = readers.label_inventory(train)
  row = {"split": split.name, "examples": len(split), "intents": len(intents),
         "slot_tags": len(tags),
         "intents_not_in_train": len(set(intents) - set(train_intents)),
         "tags_not_in_train": len(set(tags) - set(train_tags))}
  for p, value in zip(PERCENTILES, length_percentiles(lengths, PERCENTILES)):
    row[f"pieces_p{p}"] = value
  row["truncated"] = truncated
  row["bad_bytes"] = split.bad_bytes
  return row


def corpus_statistics(splits: Dict[str, NluSplit], tokenizer, max_seq_length: int) -> List[Dict]:
  return [split_statistics(split, splits["train"], tokenizer, max_seq_length)
          for split in splits.values()]


def format_statistics(rows: List[Dict]) -> str:
  return pd.DataFrame(rows).set_index("split").T.to_string()


def run_main() -> None:
  """Console script `bert-nlu-data-stats`."""
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("data_dir", None, "Corpus directory (train/dev/test or SNIPS raw JSON).")
  flags.DEFINE_enum("corpus_format", "seq", ["seq", "snips_json"], "Layout of --data_dir.")
  flags.DEFINE_enum("multi_intent_policy", "atomic", ["atomic", "first", "multilabel"],
                    "ATIS a#b labels.")
  flags.DEFINE_string("vocab_file", None, "BERT vocab.txt.")
  flags.DEFINE_bool("do_lower_case", True, "Tokenizer casing.")
  flags.DEFINE_integer("max_seq_length", 64, "Truncation length (incl. [CLS] and [SEP]).")
  flags.mark_flags_as_required(["data_dir", "vocab_file"])

  def main(argv):
    del argv
    from bert_nlu.errors import InputError  # pylint: disable=g-import-not-at-top
    values = flags.FLAGS
    try:
      if values.corpus_format == "seq":
        splits = readers.read_seq_corpus(values.data_dir,
                                         multi_intent_policy=values.multi_intent_policy)
      else:
        splits = {name: readers.read_snips_json_split(values.data_dir, name)
                  for name in ("train", "dev")}
    except InputError as e:
      print(f"error: {e}", file=sys.stderr)
      return 2
    tokenizer = make_tokenizer(values.vocab_file, values.do_lower_case)
    print(format_statistics(corpus_statistics(splits, tokenizer, values.max_seq_length)))
    return 0

  app.run(main)


if __name__ == "__main__":
  run_main()
