"""Data statistics: `python -m bert_nlu.data.stats --data_dir=... --vocab_file=...`.

Prints per split: examples, intents, slot tags, word-piece length percentiles (with [CLS]/[SEP]),
examples truncated at --max_seq_length, undecodable bytes replaced while reading, and labels
absent from train.
"""

import sys
from typing import Dict, List

import pandas as pd

from bert_nlu.compat import make_tokenizer
from bert_nlu.data import readers
from bert_nlu.data.examples import NluSplit
from bert_nlu.data.features import align_words, word_pieces
from bert_nlu.data.tfrecords import length_percentiles

PERCENTILES = (50, 90, 95, 99, 100)


def split_statistics(split: NluSplit, train: NluSplit, tokenizer,
                     max_seq_length: int) -> Dict:
  """Statistics of one split (labels compared against the training split)."""
  lengths, truncated = [], 0
  for example in split.examples:
    pieces = word_pieces(tokenizer, example.words)
    lengths.append(sum(len(p) for p in pieces) + 2)
    _, _, kept = align_words(pieces, max_seq_length)
    truncated += kept < len(example.words)
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
