"""Corpus readers: files on disk -> `NluSplit` of `NluExample`s.

Two layouts are read:

* The `seq.in` / `seq.out` / `label` layout of Goo et al. (NAACL 2018), used by the preprocessed
  SNIPS and ATIS corpora (and by any corpus written in that form): one utterance per line in
  `seq.in`, one BIO slot tag per word on the same line of `seq.out`, one intent per line in
  `label`. See `read_seq_split` and `read_seq_corpus`.
* The original SNIPS 2017 JSON layout (`<Intent>/train_<Intent>_full.json`,
  `<Intent>/validate_<Intent>.json`), where an utterance is a list of text chunks, some of them
  tagged with an entity. See `read_snips_json_split`.

Text handling (both layouts):

* Files are read as bytes and decoded as UTF-8 with undecodable bytes replaced by U+FFFD. The
  number of replaced bytes is exact (one per byte, even where one U+FFFD stands for several
  bytes) and lands in `NluSplit.bad_bytes`; a warning names the file and the lines. U+FFFD
  characters that are already in the file as valid UTF-8 are text, not bad bytes.
* A leading UTF-8 byte order mark is dropped; "\\r\\n" counts as "\\n"; a missing final newline is
  fine.
* Words and tags are split on any whitespace (`str.split()`): the real SNIPS files have leading,
  trailing and double spaces that a split on " " would turn into empty words.

Multi-intent labels (ATIS joins several intents with "#", e.g. "atis_flight#atis_airfare"):

* "atomic" (default): the joined string is one intent class of its own. This is how the
  published JointBERT / Goo et al. numbers treat it, so a combination that occurs in dev/test but
  never in train can only be predicted wrongly and simply counts as an error.
* "first": keep only the first intent ("atis_flight#atis_airfare" -> "atis_flight").
* "multilabel": the label is the SET of its intents, written canonically (sorted, joined by "#":
  "b#a" -> "a#b"); the model predicts each atomic intent on its own (`labels.intent_set`).

SNIPS JSON chunks -> BIO tags: the chunk texts are concatenated, every character remembers the
chunk it came from, and the text is split into whitespace-separated words. A word takes the
entity of the chunk holding its first character: "B-<entity>" for the first such word of an
entity chunk, "I-<entity>" for the following ones, "O" for words starting in an untagged chunk.
A chunk boundary inside a word therefore never splits the word: "tobymac" (artist) followed by
the untagged chunk "'s " gives the one word "tobymac's" tagged B-artist, and a trailing "?" or
"." stays glued to the last word of the entity. An entity chunk that starts inside a word of the
previous chunk (annotators' missing spaces, e.g. city "Meers" + "," + state "MP") gets no word
of its own if it is a single word; a warning names the file and the utterance.
"""

import bisect
import json
import logging
import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bert_nlu.data import labels
from bert_nlu.data.examples import NluExample, NluSplit
from bert_nlu.errors import InputError

MULTI_INTENT_POLICIES = ("atomic", "first", "multilabel")
MULTI_INTENT_SEPARATOR = labels.INTENT_SEPARATOR

SEQ_IN_FILE = "seq.in"
SEQ_OUT_FILE = "seq.out"
LABEL_FILE = "label"
SEQ_FILES = (SEQ_IN_FILE, SEQ_OUT_FILE, LABEL_FILE)

DEV_SPLIT = "dev"
DEV_FALLBACK_DIR = "valid"

SNIPS_JSON_FILE_PATTERNS = {
    "train": "train_{intent}_full.json",
    "dev": "validate_{intent}.json",
}

OUTSIDE_TAG = "O"

_BYTE_ORDER_MARK = "\ufeff"
_EXCERPT_CHARS = 80
_MAX_LINES_IN_WARNING = 20
_SLOT_TAG_PATTERN = re.compile(r"[BI]-.+")
_WORD_PATTERN = re.compile(r"\S+")  # Same whitespace as str.split().

_logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Decoding and lines.


def decode_utf8_counting_bad_bytes(data: bytes) -> Tuple[str, Tuple[int, ...]]:
  """Decodes UTF-8 like `data.decode("utf-8", errors="replace")` and reports what was replaced.

  Args:
    data: raw file content.

  Returns:
    (text, bad_byte_offsets): `text` equals `data.decode("utf-8", errors="replace")`;
    `bad_byte_offsets` holds the offset in `data` of every byte that could not be decoded (one
    entry per byte, so its length is the number of bad bytes, even where one U+FFFD replaced a
    run of several bytes).
  """
  pieces = []
  bad_byte_offsets = []
  start = 0
  while True:
    try:
      pieces.append(data[start:].decode("utf-8"))
      break
    except UnicodeDecodeError as error:
      bad_start, bad_end = start + error.start, start + error.end
      pieces.append(data[start:bad_start].decode("utf-8"))
      pieces.append("\ufffd")
      bad_byte_offsets.extend(range(bad_start, bad_end))
      start = bad_end
  return "".join(pieces), tuple(bad_byte_offsets)


def line_numbers_of_offsets(data: bytes, offsets: Sequence[int]) -> List[int]:
  """Returns the sorted distinct 1-based line numbers ("\\n"-separated) holding `offsets`."""
  newline_offsets = [match.start() for match in re.finditer(b"\n", data)]
  return sorted({bisect.bisect_left(newline_offsets, offset) + 1 for offset in offsets})


def read_text_file(path: str) -> Tuple[str, int]:
  """Reads a UTF-8 file, replacing undecodable bytes by U+FFFD and warning about them.

  Args:
    path: file to read.

  Returns:
    (text, bad_bytes): the decoded text without a leading byte order mark, and the number of
    bytes that were replaced.
  """
  with open(path, "rb") as f:
    data = f.read()
  text, bad_byte_offsets = decode_utf8_counting_bad_bytes(data)
  if bad_byte_offsets:
    line_numbers = line_numbers_of_offsets(data, bad_byte_offsets)
    shown = ", ".join(str(n) for n in line_numbers[:_MAX_LINES_IN_WARNING])
    if len(line_numbers) > _MAX_LINES_IN_WARNING:
      shown += ", ..."
    _logger.warning("%s: %d byte(s) that are not valid UTF-8 replaced by U+FFFD on line(s) %s",
                    path, len(bad_byte_offsets), shown)
  if text.startswith(_BYTE_ORDER_MARK):
    text = text[len(_BYTE_ORDER_MARK):]
  return text, len(bad_byte_offsets)


def split_lines(text: str) -> List[str]:
  """Splits text on "\\n" only ("\\r\\n" counts as "\\n"); a final newline ends the last line.

  Unlike `str.splitlines`, characters such as U+2028 or "\\x0c" inside a line do not end it.

  Args:
    text: decoded file content.

  Returns:
    The lines without their line ends; [] for an empty text.
  """
  if not text:
    return []
  lines = text.replace("\r\n", "\n").split("\n")
  if lines[-1] == "":
    lines.pop()
  return lines


def _excerpt(line: str) -> str:
  """The first `_EXCERPT_CHARS` characters of `line`, quoted, for error messages."""
  if len(line) <= _EXCERPT_CHARS:
    return repr(line)
  return repr(line[:_EXCERPT_CHARS]) + "..."


# ---------------------------------------------------------------------------------------------
# Labels and tags.


def check_multi_intent_policy(policy: str) -> None:
  """Raises ValueError unless `policy` is one of `MULTI_INTENT_POLICIES`."""
  if policy not in MULTI_INTENT_POLICIES:
    raise ValueError(f"unknown multi_intent_policy {policy!r}; expected one of "
                     f"{', '.join(MULTI_INTENT_POLICIES)}")


def apply_multi_intent_policy(label: str, policy: str) -> str:
  """Maps a possibly "#"-joined intent label to the intent class the policy says.

  Args:
    label: e.g. "atis_flight" or "atis_flight#atis_airfare".
    policy: "atomic" (keep the joined string), "first" (keep the first intent) or
      "multilabel" (the set of intents, canonically sorted and joined).

  Returns:
    The intent class.

  Raises:
    ValueError: unknown policy, or a "#"-joined label with an empty part.
  """
  check_multi_intent_policy(policy)
  parts = label.split(MULTI_INTENT_SEPARATOR)
  if not all(parts):
    raise ValueError(f"intent label {label!r} has an empty part around "
                     f"{MULTI_INTENT_SEPARATOR!r}")
  if policy == "first":
    return parts[0]
  if policy == "multilabel":
    return labels.canonical_intent_label(label)
  return label


def is_valid_slot_tag(tag: str) -> bool:
  """True for "O" and for "B-<slot>" / "I-<slot>" with a non-empty slot name."""
  return tag == OUTSIDE_TAG or _SLOT_TAG_PATTERN.fullmatch(tag) is not None


def _first_invalid_slot_tag(tags: Sequence[str]) -> Optional[Tuple[int, str]]:
  """(1-based position, tag) of the first tag that `is_valid_slot_tag` rejects, or None."""
  for position, tag in enumerate(tags, start=1):
    if not is_valid_slot_tag(tag):
      return position, tag
  return None


# ---------------------------------------------------------------------------------------------
# seq.in / seq.out / label.


def _seq_file_paths(split_dir: str) -> Tuple[str, str, str]:
  """The paths of seq.in, seq.out and label in `split_dir`; InputError if one is missing."""
  paths = tuple(os.path.join(split_dir, file_name) for file_name in SEQ_FILES)
  for path, file_name in zip(paths, SEQ_FILES):
    if not os.path.isfile(path):
      raise InputError(path, f"missing file {file_name!r} in split directory {split_dir} "
                       f"(a split needs {', '.join(SEQ_FILES)})")
  return paths


def _check_line_counts(paths: Sequence[str], line_lists: Sequence[List[str]]) -> None:
  """Raises InputError naming the counts unless all files have as many lines."""
  counts = [len(lines) for lines in line_lists]
  if len(set(counts)) == 1:
    return
  shortest = counts.index(min(counts))
  described = ", ".join(f"{os.path.basename(path)} has {count}"
                        for path, count in zip(paths, counts))
  raise InputError(
      paths[shortest],
      f"line counts differ: {described} lines; line i of seq.in, seq.out and label must "
      f"describe the same utterance",
      line=counts[shortest] + 1)


def _seq_example(guid: str, paths: Sequence[str], line_number: int, utterance_line: str,
                 tag_line: str, label_line: str, multi_intent_policy: str) -> NluExample:
  """Builds one example from the three lines of one utterance.

  Args:
    guid: id of the example.
    paths: paths of seq.in, seq.out and label.
    line_number: 1-based line number of the three lines.
    utterance_line: the seq.in line.
    tag_line: the seq.out line.
    label_line: the label line.
    multi_intent_policy: see `apply_multi_intent_policy`.

  Returns:
    The example.

  Raises:
    InputError: empty utterance or label, word/tag count mismatch, malformed tag or label.
  """
  utterance_path, tag_path, label_path = paths
  words = utterance_line.split()
  if not words:
    raise InputError(utterance_path, "empty utterance (no words on this line)", line=line_number)
  label = label_line.strip()
  if not label:
    raise InputError(label_path, "empty intent label", line=line_number)
  tags = tag_line.split()
  if len(tags) != len(words):
    raise InputError(
        tag_path,
        f"{len(tags)} slot tags in seq.out but {len(words)} words in seq.in on this line; "
        f"seq.in line starts {_excerpt(utterance_line)}, seq.out line starts "
        f"{_excerpt(tag_line)}",
        line=line_number)
  invalid = _first_invalid_slot_tag(tags)
  if invalid is not None:
    position, tag = invalid
    raise InputError(
        tag_path,
        f"slot tag {tag!r} (tag {position}) is neither 'O' nor of the form B-<slot> / I-<slot>",
        line=line_number)
  try:
    intent = apply_multi_intent_policy(label, multi_intent_policy)
  except ValueError as error:
    raise InputError(label_path, str(error), line=line_number) from error
  return NluExample(guid=guid, words=tuple(words), slot_tags=tuple(tags), intent=intent,
                    source=utterance_path, line=line_number)


def read_seq_split(split_dir: str, name: str,
                   multi_intent_policy: str = "atomic") -> NluSplit:
  """Reads one split in the seq.in / seq.out / label layout (SNIPS, ATIS, ...).

  Args:
    split_dir: directory holding seq.in, seq.out and label.
    name: split name ("train", "dev", "test"); examples get guid "<name>-<0-based index>".
    multi_intent_policy: "atomic", "first" or "multilabel", see the module docstring.

  Returns:
    The split, examples in file order, `bad_bytes` summed over the three files.

  Raises:
    ValueError: unknown `multi_intent_policy`.
    InputError: a missing file, different line counts, no examples, or a bad line (empty
      utterance or label, word/tag count mismatch, a tag other than O / B-x / I-x).
  """
  check_multi_intent_policy(multi_intent_policy)
  paths = _seq_file_paths(split_dir)
  line_lists = []
  bad_bytes = 0
  for path in paths:
    text, file_bad_bytes = read_text_file(path)
    line_lists.append(split_lines(text))
    bad_bytes += file_bad_bytes
  _check_line_counts(paths, line_lists)
  if not line_lists[0]:
    raise InputError(paths[0], f"no examples: {', '.join(SEQ_FILES)} in {split_dir} are empty")
  examples = tuple(
      _seq_example(f"{name}-{index}", paths, index + 1, utterance_line, tag_line, label_line,
                   multi_intent_policy)
      for index, (utterance_line, tag_line, label_line) in enumerate(zip(*line_lists)))
  return NluSplit(name=name, examples=examples, bad_bytes=bad_bytes, files=paths)


def _split_dir(data_dir: str, split: str) -> str:
  """The directory of `split` in `data_dir` ("valid" stands in for a missing "dev")."""
  candidates = [split] + ([DEV_FALLBACK_DIR] if split == DEV_SPLIT else [])
  for candidate in candidates:
    path = os.path.join(data_dir, candidate)
    if os.path.isdir(path):
      return path
  looked_for = " or ".join(repr(candidate) for candidate in candidates)
  raise InputError(os.path.join(data_dir, split),
                   f"missing split directory: no {looked_for} directory in {data_dir}")


def read_seq_corpus(data_dir: str, splits: Sequence[str] = ("train", "dev", "test"),
                    multi_intent_policy: str = "atomic") -> Dict[str, NluSplit]:
  """Reads several splits of a corpus in the seq.in / seq.out / label layout.

  Args:
    data_dir: directory with one sub-directory per split (`valid` is accepted for `dev`).
    splits: names of the splits to read.
    multi_intent_policy: "atomic", "first" or "multilabel", see the module docstring.

  Returns:
    {split name: NluSplit} in the order of `splits`.

  Raises:
    ValueError: unknown `multi_intent_policy`.
    InputError: `data_dir` or a split directory is missing, or `read_seq_split` fails.
  """
  check_multi_intent_policy(multi_intent_policy)
  if not os.path.isdir(data_dir):
    raise InputError(data_dir, "corpus directory not found")
  return {
      split: read_seq_split(_split_dir(data_dir, split), split, multi_intent_policy)
      for split in splits
  }


# ---------------------------------------------------------------------------------------------
# SNIPS 2017 JSON.


def words_with_chunk_indices(chunk_texts: Sequence[str]) -> List[Tuple[str, int]]:
  """Splits the concatenated chunk texts into whitespace words.

  Args:
    chunk_texts: the texts of an utterance's chunks, in order.

  Returns:
    One (word, index of the chunk holding the word's first character) per word.
  """
  chunk_of_char = []
  for chunk_index, chunk_text in enumerate(chunk_texts):
    chunk_of_char.extend([chunk_index] * len(chunk_text))
  text = "".join(chunk_texts)
  return [(match.group(), chunk_of_char[match.start()])
          for match in _WORD_PATTERN.finditer(text)]


def bio_tags_for_chunk_indices(word_chunk_indices: Sequence[int],
                               chunk_entities: Sequence[Optional[str]]) -> List[str]:
  """BIO tags of words given the chunk each word starts in.

  Args:
    word_chunk_indices: per word, the index of the chunk holding its first character.
    chunk_entities: per chunk, its entity name or None for untagged text.

  Returns:
    One tag per word: "O" in untagged chunks, "B-<entity>" for the first word starting in an
    entity chunk, "I-<entity>" for the next words starting in that chunk.
  """
  tags = []
  previous_chunk_index = None
  for chunk_index in word_chunk_indices:
    entity = chunk_entities[chunk_index]
    if entity is None:
      tags.append(OUTSIDE_TAG)
    elif chunk_index == previous_chunk_index:
      tags.append(f"I-{entity}")
    else:
      tags.append(f"B-{entity}")
    previous_chunk_index = chunk_index
  return tags


def snips_chunks_to_bio(
    chunks: Sequence[Tuple[str, Optional[str]]]) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
  """Converts SNIPS JSON chunks to whitespace words and BIO tags (rule: module docstring).

  Args:
    chunks: (text, entity name or None) per chunk, in order.

  Returns:
    (words, slot_tags) of equal length.
  """
  word_chunks = words_with_chunk_indices([text for text, _ in chunks])
  tags = bio_tags_for_chunk_indices([index for _, index in word_chunks],
                                    [entity for _, entity in chunks])
  return tuple(word for word, _ in word_chunks), tuple(tags)


def _entity_chunks_without_words(chunks: Sequence[Tuple[str, Optional[str]]],
                                 word_chunk_indices: Sequence[int]) -> List[int]:
  """Indices of entity chunks with text in which no word starts (their tag is lost)."""
  starting = set(word_chunk_indices)
  return [index for index, (text, entity) in enumerate(chunks)
          if entity is not None and text.strip() and index not in starting]


def _utterance_chunks(utterance: Any, path: str, intent: str,
                      index: int) -> List[Tuple[str, Optional[str]]]:
  """Validates one SNIPS JSON utterance and returns its (text, entity or None) chunks.

  Raises:
    InputError: the utterance is not {"data": [{"text": str, "entity": str (optional)}, ...]}.
  """
  def fail(problem: str) -> InputError:
    return InputError(path, f"utterance {index} (0-based) of {intent!r}: {problem}")

  if not isinstance(utterance, dict) or "data" not in utterance:
    raise fail("expected an object with a 'data' list of chunks")
  data = utterance["data"]
  if not isinstance(data, list):
    raise fail(f"'data' must be a list of chunks, found {type(data).__name__}")
  chunks = []
  for chunk_index, chunk in enumerate(data):
    if not isinstance(chunk, dict) or not isinstance(chunk.get("text"), str):
      raise fail(f"chunk {chunk_index} must be an object with a string 'text'")
    entity = chunk.get("entity")
    if entity is not None and (not isinstance(entity, str) or entity.split() != [entity]):
      raise fail(f"chunk {chunk_index} has entity {entity!r}; expected a non-empty name "
                 f"without whitespace")
    for field, value in (("text", chunk["text"]), ("entity", entity or "")):
      if not _is_valid_unicode(value):
        raise fail(f"chunk {chunk_index} has a {field} with a lone UTF-16 surrogate "
                   f"(a \\uD800-\\uDFFF escape that is not part of a pair): {_excerpt(value)}")
    chunks.append((chunk["text"], entity))
  return chunks


def _is_valid_unicode(text: str) -> bool:
  """False if `text` holds a lone surrogate (JSON "\\ud800" escapes decode to one)."""
  try:
    text.encode("utf-8")
  except UnicodeEncodeError:
    return False
  return True


def _load_json(path: str) -> Tuple[Any, int]:
  """Reads a JSON file (bad bytes replaced); returns (object, bad_bytes).

  Raises:
    InputError: malformed JSON, with the line of the JSON error.
  """
  text, bad_bytes = read_text_file(path)
  try:
    return json.loads(text), bad_bytes
  except json.JSONDecodeError as error:
    raise InputError(path, f"malformed JSON: {error.msg} (column {error.colno})",
                     line=error.lineno) from error
  except RecursionError:
    raise InputError(path, "malformed JSON: nested too deeply") from None
  except ValueError as error:  # e.g. an integer literal longer than Python's digit limit
    raise InputError(path, f"malformed JSON: {error}") from error


def _snips_json_utterances(document: Any, path: str, intent: str) -> List[Any]:
  """The utterance list under `intent` in a SNIPS JSON document; InputError if not there."""
  if not isinstance(document, dict) or intent not in document:
    found = sorted(document) if isinstance(document, dict) else type(document).__name__
    raise InputError(path, f"expected a JSON object with the key {intent!r} (the intent "
                     f"directory's name), found {found}")
  utterances = document[intent]
  if not isinstance(utterances, list):
    raise InputError(path, f"{intent!r} must be a list of utterances, found "
                     f"{type(utterances).__name__}")
  return utterances


def _snips_json_examples(path: str, intent: str, name: str,
                         first_index: int) -> Tuple[List[NluExample], int]:
  """Reads the examples of one SNIPS JSON file; returns (examples, bad_bytes).

  Raises:
    InputError: malformed JSON, a wrong structure or an utterance without words.
  """
  document, bad_bytes = _load_json(path)
  examples = []
  for index, utterance in enumerate(_snips_json_utterances(document, path, intent)):
    chunks = _utterance_chunks(utterance, path, intent, index)
    word_chunks = words_with_chunk_indices([text for text, _ in chunks])
    if not word_chunks:
      raise InputError(path, f"utterance {index} (0-based) of {intent!r}: no words")
    word_chunk_indices = [chunk_index for _, chunk_index in word_chunks]
    for lost in _entity_chunks_without_words(chunks, word_chunk_indices):
      _logger.warning("%s: utterance %d (0-based) of %r: entity chunk %r (%s) starts inside a "
                      "word of the previous chunk and tags no word", path, index, intent,
                      chunks[lost][0], chunks[lost][1])
    tags = bio_tags_for_chunk_indices(word_chunk_indices, [entity for _, entity in chunks])
    examples.append(NluExample(
        guid=f"{name}-{first_index + index}",
        words=tuple(word for word, _ in word_chunks),
        slot_tags=tuple(tags),
        intent=intent,
        source=path,
        line=index + 1))
  return examples, bad_bytes


def _intent_dirs(raw_dir: str) -> List[str]:
  """Sorted names of the intent sub-directories of `raw_dir`; InputError if there are none."""
  if not os.path.isdir(raw_dir):
    raise InputError(raw_dir, "SNIPS JSON directory not found")
  intents = sorted(entry for entry in os.listdir(raw_dir)
                   if os.path.isdir(os.path.join(raw_dir, entry)))
  if not intents:
    raise InputError(raw_dir, "no intent directories (expected one per intent, e.g. PlayMusic/)")
  for intent in intents:
    if not _is_valid_unicode(intent):  # os.listdir maps bytes that are not UTF-8 to surrogates
      raise InputError(raw_dir, f"intent directory name {intent!r} is not valid UTF-8")
  return intents


def read_snips_json_split(raw_dir: str, name: str) -> NluSplit:
  """Reads a split of the original SNIPS 2017 JSON release.

  Files: `raw_dir/<Intent>/train_<Intent>_full.json` for "train" and
  `raw_dir/<Intent>/validate_<Intent>.json` for "dev". Intents come in directory-name order,
  utterances in file order; the intent of an utterance is its directory's name. Chunks become
  words and BIO tags as described in the module docstring.

  Args:
    raw_dir: directory with one sub-directory per intent.
    name: "train" or "dev"; examples get guid "<name>-<0-based index over all intents>" and
      line = 1-based index of the utterance in its file.

  Returns:
    The split, `bad_bytes` summed over the files read.

  Raises:
    ValueError: `name` is "test" (the raw release has none) or another unknown name.
    InputError: missing directory or file, malformed JSON (with the JSON error's line), a wrong
      structure (with the utterance index), an utterance without words, or no examples at all.
  """
  if name == "test":
    raise ValueError(
        "the raw SNIPS 2017 JSON release has no test split: the Goo et al. test utterances are "
        "drawn from the train_<Intent>_full.json files; read the preprocessed snips/test "
        "(read_seq_split / read_seq_corpus) for the standard test set")
  if name not in SNIPS_JSON_FILE_PATTERNS:
    raise ValueError(f"unknown SNIPS JSON split {name!r}; expected one of "
                     f"{', '.join(SNIPS_JSON_FILE_PATTERNS)}")
  examples = []
  files = []
  bad_bytes = 0
  for intent in _intent_dirs(raw_dir):
    path = os.path.join(raw_dir, intent, SNIPS_JSON_FILE_PATTERNS[name].format(intent=intent))
    if not os.path.isfile(path):
      raise InputError(path, f"missing file for intent {intent!r} and split {name!r}")
    file_examples, file_bad_bytes = _snips_json_examples(path, intent, name, len(examples))
    examples.extend(file_examples)
    files.append(path)
    bad_bytes += file_bad_bytes
  if not examples:
    raise InputError(raw_dir, f"no examples in the {name!r} files")
  return NluSplit(name=name, examples=tuple(examples), bad_bytes=bad_bytes, files=tuple(files))


# ---------------------------------------------------------------------------------------------
# Inventory.


def label_inventory(split: NluSplit) -> Tuple[List[str], List[str]]:
  """The distinct intents and slot tags of a split.

  Args:
    split: any split.

  Returns:
    (sorted intents, sorted slot tags).
  """
  intents = {example.intent for example in split.examples}
  tags = {tag for example in split.examples for tag in example.slot_tags}
  return sorted(intents), sorted(tags)
