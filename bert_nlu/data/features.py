"""Examples -> word pieces and ids: NLU words with one tag per word, and GLUE sentence pairs.

NLU (`convert_example`). For an utterance of words w_1..w_n the model input is
  [CLS] pieces(w_1) ... pieces(w_n) [SEP]
Only the first piece of each word carries the word's slot tag (`first_piece_mask` = 1); the other
pieces, [CLS], [SEP] and padding are masked out of the slot loss and never predicted. Metrics map
the first-piece predictions back to words, so they are computed on words, not pieces.

Truncation is by whole words: a word whose pieces would not fit in `max_seq_length - 2` is dropped
with all words after it. The number of dropped words is recorded; the metrics still score those
words (as predicted "O"), so truncation can only lower a score, never hide errors.

Sentence pairs (`convert_pair_example`, GLUE), as google-research/bert's run_classifier.py:
  [CLS] pieces(text_a) [SEP] pieces(text_b) [SEP]   segment ids 0 ... 0 1 ... 1
  [CLS] pieces(text_a) [SEP]                        (single sentence), segment ids all 0
The texts are word-piece tokenized whole. Truncation removes pieces from the end of the LONGER
side, one at a time, until the pair fits (`truncate_seq_pair`); a single sentence loses its tail.
The number of pieces removed is recorded per feature, so truncated examples are counted.
"""

import dataclasses
from typing import List, Optional, Sequence, Tuple

from bert_nlu.data.examples import NluExample, SentencePairExample
from bert_nlu.data.labels import LabelMaps

CLS_TOKEN = "[CLS]"
SEP_TOKEN = "[SEP]"
UNK_TOKEN = "[UNK]"


@dataclasses.dataclass(frozen=True)
class NluFeature:
  """Model input for one example; all lists have the same length L <= max_seq_length.

  Attributes:
    example_index: position of the example in its split (links predictions back to words).
    input_ids: [L] word-piece ids, starting with [CLS] and ending with [SEP].
    segment_ids: [L] all 0 (single sentence).
    first_piece_mask: [L] 1 on the first piece of each kept word, else 0.
    slot_ids: [L] tag id on first pieces (-1 for a tag unseen in training), 0 elsewhere.
    intent_id: intent id, -1 if the intent is unseen in training (multilabel: the first member's).
    intent_ids: the ids of the example's atomic intents (multilabel label maps; -1 for one
      unseen in training); (intent_id,) otherwise.
    num_words: words in the example.
    num_words_kept: words that fit (== num_words unless truncated).
  """
  example_index: int
  input_ids: Tuple[int, ...]
  segment_ids: Tuple[int, ...]
  first_piece_mask: Tuple[int, ...]
  slot_ids: Tuple[int, ...]
  intent_id: int
  intent_ids: Tuple[int, ...]
  num_words: int
  num_words_kept: int

  @property
  def truncated(self) -> bool:
    return self.num_words_kept < self.num_words

  @property
  def length(self) -> int:
    return len(self.input_ids)


def word_pieces(tokenizer, words: Sequence[str]) -> List[List[str]]:
  """Word pieces of each word; a word the tokenizer reduces to nothing becomes [UNK].

  (BERT's basic tokenizer drops control characters, so a "word" made only of them would otherwise
  vanish and shift every later tag by one.)
  """
  return [tokenizer.tokenize(word) or [UNK_TOKEN] for word in words]


def align_words(pieces_per_word: Sequence[Sequence[str]],
                max_seq_length: int) -> Tuple[List[str], List[int], int]:
  """Lays out [CLS] pieces [SEP] and marks first pieces.

  Args:
    pieces_per_word: word pieces of each word (at least one per word, see `word_pieces`).
    max_seq_length: maximum total length including [CLS] and [SEP]; must be >= 3.

  Returns:
    (tokens [L], first_piece_mask [L], num_words_kept).

  Raises:
    ValueError: max_seq_length < 3, or a word without pieces.
  """
  if max_seq_length < 3:
    raise ValueError(f"max_seq_length must be >= 3, got {max_seq_length}")
  for index, pieces in enumerate(pieces_per_word):
    if not pieces:
      raise ValueError(f"word {index} has no word pieces (word_pieces maps such words to "
                       f"{UNK_TOKEN})")
  tokens = [CLS_TOKEN]
  first_piece_mask = [0]
  num_words_kept = 0
  budget = max_seq_length - 2
  for pieces in pieces_per_word:
    if len(tokens) - 1 + len(pieces) > budget:
      break
    tokens.extend(pieces)
    first_piece_mask.extend([1] + [0] * (len(pieces) - 1))
    num_words_kept += 1
  tokens.append(SEP_TOKEN)
  first_piece_mask.append(0)
  return tokens, first_piece_mask, num_words_kept


def convert_example(example: NluExample, example_index: int, tokenizer, label_maps: LabelMaps,
                    max_seq_length: int) -> NluFeature:
  """Turns one example into its NluFeature (see module docstring for the layout).

  Raises:
    ValueError: max_seq_length < 3, or the example has not one slot tag per word.
  """
  if len(example.slot_tags) != len(example.words):
    raise ValueError(f"example {example.guid!r}: {len(example.words)} words but "
                     f"{len(example.slot_tags)} slot tags")
  tokens, first_piece_mask, num_words_kept = align_words(
      word_pieces(tokenizer, example.words), max_seq_length)
  slot_ids = [0] * len(tokens)
  word_index = 0
  for position, is_first in enumerate(first_piece_mask):
    if is_first:
      slot_ids[position] = label_maps.slot_tag_id(example.slot_tags[word_index])
      word_index += 1
  if label_maps.multilabel:
    intent_ids = label_maps.intent_set_ids(example.intent)
  else:
    intent_ids = (label_maps.intent_id(example.intent),)
  return NluFeature(
      example_index=example_index,
      input_ids=tuple(tokenizer.convert_tokens_to_ids(tokens)),
      segment_ids=(0,) * len(tokens),
      first_piece_mask=tuple(first_piece_mask),
      slot_ids=tuple(slot_ids),
      intent_id=intent_ids[0],
      intent_ids=intent_ids,
      num_words=len(example.words),
      num_words_kept=num_words_kept)


def convert_examples(examples: Sequence[NluExample], tokenizer, label_maps: LabelMaps,
                     max_seq_length: int) -> List[NluFeature]:
  return [convert_example(example, i, tokenizer, label_maps, max_seq_length)
          for i, example in enumerate(examples)]


def words_to_predict_feature(words: Sequence[str], tokenizer,
                             max_seq_length: int) -> Tuple[List[int], List[int], int]:
  """Input ids and first-piece mask for raw words (prediction; no labels).

  Returns:
    (input_ids [L], first_piece_mask [L], num_words_kept).
  """
  tokens, first_piece_mask, num_words_kept = align_words(
      word_pieces(tokenizer, words), max_seq_length)
  return tokenizer.convert_tokens_to_ids(tokens), first_piece_mask, num_words_kept


def word_level_tags(first_piece_mask: Sequence[int], piece_tag_ids: Sequence[int],
                    slot_tags: Sequence[str], num_words: int,
                    fill_tag: Optional[str] = "O") -> List[str]:
  """Maps per-piece predicted tag ids back to one tag per word.

  Args:
    first_piece_mask: [L] (may be padded with zeros beyond L).
    piece_tag_ids: [L] predicted tag id at every position.
    slot_tags: the tag vocabulary.
    num_words: words in the original utterance; words lost to truncation get `fill_tag`.
    fill_tag: tag for truncated words.

  Returns:
    [num_words] tag strings.
  """
  tags = [slot_tags[tag_id] for is_first, tag_id in zip(first_piece_mask, piece_tag_ids)
          if is_first]
  if len(tags) > num_words:
    raise ValueError(f"{len(tags)} first pieces for {num_words} words")
  return tags + [fill_tag] * (num_words - len(tags))


@dataclasses.dataclass(frozen=True)
class SentencePairFeature:
  """Model input for one sentence (pair); all lists have the same length L <= max_seq_length.

  Attributes:
    example_index: position of the example in its split.
    input_ids: [L] word-piece ids: [CLS] a [SEP] (b [SEP]).
    segment_ids: [L] 0 on [CLS], text_a and its [SEP]; 1 on text_b and the final [SEP].
    label_id: class id (0 for a regression task).
    score: regression target (0.0 for a classification task).
    num_pieces: word pieces of text_a and text_b before truncation.
    num_pieces_kept: word pieces that fit (== num_pieces unless truncated).
  """
  example_index: int
  input_ids: Tuple[int, ...]
  segment_ids: Tuple[int, ...]
  label_id: int
  score: float
  num_pieces: int
  num_pieces_kept: int

  @property
  def truncated(self) -> bool:
    return self.num_pieces_kept < self.num_pieces

  @property
  def length(self) -> int:
    return len(self.input_ids)


def truncate_seq_pair(tokens_a: Sequence[str], tokens_b: Sequence[str],
                      max_length: int) -> Tuple[List[str], List[str]]:
  """Shortens a pair to at most `max_length` pieces in total, always from the longer side's end.

  (google-research/bert's `_truncate_seq_pair`: a long sentence loses pieces before a short one
  does, which keeps more of both than cutting each by the same share; on a tie, text_b loses.)

  Returns:
    (kept pieces of a, kept pieces of b), new lists.
  """
  tokens_a, tokens_b = list(tokens_a), list(tokens_b)
  while len(tokens_a) + len(tokens_b) > max_length:
    if len(tokens_a) > len(tokens_b):
      tokens_a.pop()
    else:
      tokens_b.pop()
  return tokens_a, tokens_b


def lay_out_pair(tokens_a: Sequence[str], tokens_b: Optional[Sequence[str]],
                 max_seq_length: int) -> Tuple[List[str], List[int], int]:
  """Lays out [CLS] a [SEP] (b [SEP]) with segment ids, truncating to `max_seq_length`.

  Args:
    tokens_a: word pieces of the first sentence.
    tokens_b: word pieces of the second sentence, None for a single sentence.
    max_seq_length: maximum total length including [CLS] and the [SEP]s; must be >= 3.

  Returns:
    (tokens [L], segment_ids [L], number of pieces of a and b removed by truncation).
  """
  if max_seq_length < 3:
    raise ValueError(f"max_seq_length must be >= 3, got {max_seq_length}")
  if tokens_b is None:
    kept_a, kept_b = list(tokens_a[:max_seq_length - 2]), []
  else:
    kept_a, kept_b = truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)
  tokens = [CLS_TOKEN] + kept_a + [SEP_TOKEN]
  segment_ids = [0] * len(tokens)
  if tokens_b is not None:
    tokens += kept_b + [SEP_TOKEN]
    segment_ids += [1] * (len(kept_b) + 1)
  removed = len(tokens_a) + len(tokens_b or ()) - len(kept_a) - len(kept_b)
  return tokens, segment_ids, removed


def pair_to_predict_feature(text_a: str, text_b: Optional[str], tokenizer,
                            max_seq_length: int) -> Tuple[List[int], List[int], int]:
  """Input ids and segment ids of raw text (prediction; no labels).

  Returns:
    (input_ids [L], segment_ids [L], number of word pieces removed by truncation).
  """
  tokens_b = None if text_b is None else tokenizer.tokenize(text_b)
  tokens, segment_ids, removed = lay_out_pair(tokenizer.tokenize(text_a), tokens_b,
                                              max_seq_length)
  return tokenizer.convert_tokens_to_ids(tokens), segment_ids, removed


def convert_pair_example(example: SentencePairExample, example_index: int, tokenizer, labels,
                         max_seq_length: int) -> SentencePairFeature:
  """Turns one GLUE example into its SentencePairFeature (see module docstring for the layout).

  Args:
    labels: the task's `bert_nlu.data.glue.GlueLabels` (its label ids; regression: no labels).
  """
  tokens_a = tokenizer.tokenize(example.text_a)
  tokens_b = None if example.text_b is None else tokenizer.tokenize(example.text_b)
  tokens, segment_ids, removed = lay_out_pair(tokens_a, tokens_b, max_seq_length)
  num_pieces = len(tokens_a) + len(tokens_b or ())
  return SentencePairFeature(
      example_index=example_index,
      input_ids=tuple(tokenizer.convert_tokens_to_ids(tokens)),
      segment_ids=tuple(segment_ids),
      label_id=0 if labels.is_regression else labels.label_id(example.label),
      score=float(example.score) if labels.is_regression else 0.0,
      num_pieces=num_pieces,
      num_pieces_kept=num_pieces - removed)


def convert_pair_examples(examples: Sequence[SentencePairExample], tokenizer, labels,
                          max_seq_length: int) -> List[SentencePairFeature]:
  return [convert_pair_example(example, i, tokenizer, labels, max_seq_length)
          for i, example in enumerate(examples)]
