"""Bad input never crashes uncontrolled (issue "Reliability", item 4).

Property-based tests (hypothesis) over everything that reads user input. Every case must end in a
well-formed result or in the project's own error:

* file readers: `InputError` naming a file or directory of the input and, when it gives a line,
  a line that exists (or the first missing one);
* pure functions given invalid arguments: `ValueError` with a message;
* run_bert_nlu.py flags: `absl.app.UsageError` naming a flag, or absl's own `flags.Error` when a
  value does not even parse or breaks a bound the flag declares, naming it (which `app.run`
  reports as a usage error as well).

Anything else (IndexError, KeyError, UnicodeError, RecursionError, TypeError, ...) fails, and so
does a result that breaks the target's contract (a span whose text is not text[start:end], a
wrong `truncated_words`, an example whose tags are not one valid BIO tag per word, ...).

Targets: the seq.in / seq.out / label readers, the SNIPS 2017 JSON reader, word-piece alignment
(`align_words`, `convert_example`, `words_to_predict_feature`) on a real BERT vocabulary,
`tags_to_spans`, the predictor (`word_offsets`, `read_utterances`, `NluPredictor.predict` with a
random stand-in model and with a real tiny export) and the flags of run_bert_nlu.py. There is no
GLUE-style TSV reader in the package, so there is no TSV target.

Each target is a `check_<target>(ctx, case)` function returning RESULT or CONTROLLED (or raising)
plus a hypothesis strategy for `case`, listed in TARGETS. bench/fuzz.py runs the same targets with
a larger budget and counts outcomes instead of stopping at the first failure. tests/data/nasty/
holds a committed corpus of specific nasty inputs with their expected outcomes (expected.json);
`test_nasty_corpus` runs every file of it.
"""

import contextlib
import functools
import json
import math
import os
import re
import sys
import tempfile

import hypothesis
from hypothesis import strategies as st
import numpy as np
import pytest

from bert_nlu.data import features, readers
from bert_nlu.data.examples import NluExample, NluSplit
from bert_nlu.data.labels import UNKNOWN_ID, LabelMaps
from bert_nlu.errors import InputError
from bert_nlu import convert
from bert_nlu import metrics
from bert_nlu import predict

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NASTY_DIR = os.path.join(REPO_DIR, "tests", "data", "nasty")

RESULT = "result"
CONTROLLED = "controlled_error"

CI_EXAMPLES = 100  # per target in CI; bench/fuzz.py runs thousands


class PropertyViolation(AssertionError):
  """A target returned something that breaks its contract (not an exception of the target)."""


def expect(condition, message) -> None:
  if not condition:
    raise PropertyViolation(message() if callable(message) else message)


def _encodable(text: str) -> bool:
  try:
    text.encode("utf-8")
  except UnicodeEncodeError:
    return False
  return True


# ---------------------------------------------------------------------------------------------
# Context: what the targets need, built once per session (pytest) or run (bench/fuzz.py).


def real_vocab_file() -> str:
  """The converted all-MiniLM-L6-v2 vocabulary where the product keeps it: `bert_nlu.convert`'s
  cache ($BERT_NLU_CACHE, else ~/.cache/bert_nlu), as `make weights` writes it. May not exist."""
  return os.path.join(convert.default_cache_dir(), convert.MINILM_OUTPUT_NAME, convert.VOCAB_NAME)


class FuzzContext:
  """Scratch space, tokenizers, the tiny BERT and corpus, and (lazily) predictors.

  Tokenizers: "tiny" (the tiny BERT's vocabulary) always; "uncased" and "cased" on the real
  MiniLM vocabulary (`real_vocab_file()`) only when it is installed. Without it the targets run on
  the tiny vocabulary alone and `missing_real_vocabulary` says so (the test of the real vocabulary
  skips with that reason; bench/fuzz.py records it).
  """

  def __init__(self, scratch_root: str, tiny_bert_dir: str, tiny_corpus_dir: str,
               export_dir: str = "", vocab_file: str = ""):
    self.scratch_root = scratch_root
    self.tiny_bert_dir = tiny_bert_dir
    self.tiny_corpus_dir = tiny_corpus_dir
    self.export_dir = export_dir
    self.real_vocab_file = vocab_file or real_vocab_file()
    self.missing_real_vocabulary = "" if os.path.isfile(self.real_vocab_file) else (
        f"the MiniLM vocabulary is not installed at {self.real_vocab_file} (set $BERT_NLU_CACHE "
        "or run `make weights`): word-piece targets ran on the tiny vocabulary only")

  @contextlib.contextmanager
  def scratch(self):
    with tempfile.TemporaryDirectory(dir=self.scratch_root) as directory:
      yield directory

  @functools.cached_property
  def tokenizers(self):
    from bert_nlu.compat import make_tokenizer  # pylint: disable=g-import-not-at-top
    tokenizers = {"tiny": make_tokenizer(os.path.join(self.tiny_bert_dir, "vocab.txt"), True)}
    if not self.missing_real_vocabulary:
      tokenizers["uncased"] = make_tokenizer(self.real_vocab_file, True)
      tokenizers["cased"] = make_tokenizer(self.real_vocab_file, False)
    return tokenizers

  @property
  def tokenizer_names(self):
    """The available tokenizers, the real vocabulary's first."""
    return [name for name in ("uncased", "cased", "tiny") if name in self.tokenizers]

  @functools.cached_property
  def export_predictor(self):
    return predict.NluPredictor(self.export_dir)

  @functools.cached_property
  def bad_bert_configs(self):
    """bert_config.json stand-ins that are not a usable JSON object."""
    directory = os.path.join(self.scratch_root, "bad_bert_configs")
    os.makedirs(directory, exist_ok=True)
    paths = []
    for index, data in enumerate([b"[]", b"{", b"", b"\xff\xfe{}", b'{"max_position_embeddings": '
                                  b'"64", "num_hidden_layers": null}', b"null"]):
      path = os.path.join(directory, f"bert_config_{index}.json")
      with open(path, "wb") as f:
        f.write(data)
      paths.append(path)
    return paths + [directory]  # a directory where a file is expected


def train_tiny_export(tiny_bert_dir: str, corpus_dir: str, output_dir: str) -> str:
  """Trains the conftest tiny BERT briefly and returns its best export directory."""
  from bert_nlu import hooks, testing, train  # pylint: disable=g-import-not-at-top
  config = testing.tiny_run_config(tiny_bert_dir, corpus_dir, output_dir, num_train_epochs=3,
                                   save_checkpoints_steps=1000, save_summary_steps=1000)
  train.run(config)
  return hooks.latest_export(output_dir)


# ---------------------------------------------------------------------------------------------
# Building blocks of nasty input.

WHITESPACE = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
NASTY_WORDS = [
    "\x00", "\x01x\x7f", "\x9f", "\ufeff", "\ufeffbom", "\u200b", "zw\u200dj", "\u202eevil",
    "\u2060", "\ufffd", "e\u0301", "\u0301\u0302", "\U0001F468\u200D\U0001F469\u200D\U0001F467",
    "\U0001F44D\U0001F3FD", "\U0001F1EB\U0001F1F7", "\u5317\u4eac",
    "\u0645\u0631\u062d\u0628\u0627",
    "\u0928\u092e\u0938\u094d\u0924\u0947", "\u0130", "stra\u00dfe", "\ufb01", "\u2126",
    "[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]", "##", "##s", "[unused0]", "!" * 40, "x" * 250,
    "B-x", "O", "#", "a##b", '"\\', "<s>", "%s", "{0}", "\U00010000", "\U0010FFFF", "\uffff",
    "\ue000", "play", "adele", "paris",
]
NASTY_SEPARATORS = [" ", "  ", "\t", "\u3000", "\u00a0", "\u2028", "\u2029", "\x0b", "\x0c", "\x1c",
                    "\x1f", "\x85", "\r"]
NASTY_BYTES = [b"\xff", b"\xfe", b"\xc3", b"\xc3(", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\x00",
               b"\n", b"\r", b"\r\n", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xe2\x80\xa8", b"\x1a",
               b"\x80", b"\xf0\x9f\x98"]
SLOT_NAMES = ["x", "y", "artist", "\u5317\u4eac", "a-b", "_", "B-x"]
INVALID_TAGS = ["", "B", "I", "B-", "I-", "Bx", "E-x", "S-x", "O-x", "b-x", "o", " O", "O ",
                "B-x y", "-", "#", "B-\n", "\x00", "O\x00", "\ufeffO"]


def word_chars():
  return st.characters(exclude_categories=("Cs",), exclude_characters=WHITESPACE)


def words():
  """One whitespace-free word: mostly nasty."""
  return st.one_of(st.sampled_from(NASTY_WORDS), st.text(word_chars(), min_size=1, max_size=12))


def any_strings():
  """Any text, whitespace and line breaks included (no lone surrogates)."""
  return st.one_of(
      st.text(max_size=30),
      st.lists(st.one_of(words(), st.sampled_from(NASTY_SEPARATORS)), max_size=10).map("".join))


def valid_tags():
  slot = st.one_of(st.sampled_from(SLOT_NAMES), st.text(word_chars(), min_size=1, max_size=5))
  return st.one_of(st.just("O"), st.builds("{}-{}".format, st.sampled_from("BI"), slot))


def bioish_tags():
  """Mostly valid BIO tags, sometimes invalid ones."""
  return mostly(valid_tags(), st.one_of(st.sampled_from(INVALID_TAGS), st.text(max_size=5)))


def mostly(common, rare, rare_percent=10):
  """`common` with probability 1 - rare_percent / 100, else `rare`."""
  return st.integers(0, 99).flatmap(lambda n: rare if n < rare_percent else common)


def nasty_bytes():
  return st.one_of(st.sampled_from(NASTY_BYTES), st.binary(min_size=1, max_size=8))


def byte_mutations(file_names):
  """Mutations of rendered files: (kind, file, where, bytes)."""
  file_name = st.sampled_from(file_names)
  where = st.floats(0, 1)
  return st.one_of(
      st.tuples(st.just("insert"), file_name, where, nasty_bytes()),
      st.tuples(st.just("truncate"), file_name, where, st.just(b"")),
      st.tuples(st.just("replace"), file_name, where, st.binary(max_size=64)),
      st.tuples(st.just("delete"), file_name, where, st.just(b"")),
      st.tuples(st.just("drop_line"), file_name, where, st.just(b"")),
  )


def apply_byte_mutation(files, mutation):
  kind, file_name, where, data = mutation
  if file_name not in files:
    return
  content = files[file_name]
  offset = int(where * len(content))
  if kind == "insert":
    files[file_name] = content[:offset] + data + content[offset:]
  elif kind == "truncate":
    files[file_name] = content[:offset]
  elif kind == "replace":
    files[file_name] = data
  elif kind == "delete":
    del files[file_name]
  elif kind == "drop_line":
    lines = content.split(b"\n")
    del lines[min(int(where * len(lines)), len(lines) - 1)]
    files[file_name] = b"\n".join(lines)


def write_files(directory, files) -> None:
  os.makedirs(directory, exist_ok=True)
  for name, data in files.items():
    with open(os.path.join(directory, name), "wb") as f:
      f.write(data)


def count_lines(data: bytes) -> int:
  """Lines as the readers count them: "\\n"-separated, BOM dropped, a final newline ends one."""
  text = data.decode("utf-8", errors="replace")
  if text.startswith("\ufeff"):
    text = text[1:]
  return 0 if not text else text.count("\n") + (0 if text.endswith("\n") else 1)


def expect_input_error(error, roots, max_line=None) -> str:
  """Checks that an InputError names a path under one of `roots` and a plausible line."""
  path = os.path.abspath(error.path)
  expect(any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots),
         lambda: f"InputError names {error.path!r}, not a file of the input: {error}")
  expect(error.line is None or (isinstance(error.line, int) and error.line >= 1
                                and (max_line is None or error.line <= max_line)),
         lambda: f"InputError names line {error.line!r} (at most {max_line}): {error}")
  expect(isinstance(error.problem, str) and error.problem.strip(), "InputError without problem")
  expect(str(error).startswith(error.path), "InputError message does not start with the path")
  return CONTROLLED


def expect_value_error(error) -> str:
  expect(type(error) is ValueError and str(error).strip(),  # pylint: disable=unidiomatic-typecheck
         lambda: f"not a plain ValueError with a message: {error!r}")
  return CONTROLLED


def expect_well_formed_split(split, name, stripped_intents=True) -> None:
  """An NluSplit every later stage can use: one valid BIO tag per whitespace-free word, ...

  `stripped_intents`: seq labels are stripped; SNIPS intents are directory names, kept as they are.
  """
  expect(isinstance(split, NluSplit) and split.name == name and len(split.examples) > 0,
         lambda: f"not a non-empty split named {name!r}: {split!r:.300}")
  expect(isinstance(split.bad_bytes, int) and split.bad_bytes >= 0, "bad_bytes < 0")
  for index, example in enumerate(split.examples):
    expect(isinstance(example, NluExample), "not an NluExample")
    expect(example.guid == f"{name}-{index}", lambda: f"guid {example.guid!r} at {index}")
    expect(isinstance(example.words, tuple) and example.words, "no words")
    expect(all(isinstance(word, str) and word.split() == [word] and _encodable(word)
               for word in example.words), lambda: f"bad word in {example.words!r:.300}")
    expect(isinstance(example.slot_tags, tuple) and len(example.slot_tags) == len(example.words)
           and all(readers.is_valid_slot_tag(tag) and _encodable(tag)
                   for tag in example.slot_tags),
           lambda: f"not one valid tag per word: {example.slot_tags!r:.300}")
    expect(isinstance(example.intent, str) and example.intent and _encodable(example.intent)
           and (example.intent == example.intent.strip() or not stripped_intents),
           lambda: f"bad intent {example.intent!r}")
    expect(isinstance(example.line, int) and example.line >= 1, "line < 1")
  # The label maps of a split must be savable (they go to label_maps.json, UTF-8).
  intents, tags = readers.label_inventory(split)
  json.dumps(LabelMaps.from_labels(intents, [tags]).to_json_dict(),
             ensure_ascii=False).encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Target: read_seq_split.


def seq_labels():
  return st.one_of(
      st.sampled_from(["PlayMusic", "atis_flight#atis_airfare", "Play Music", "\u6587\u5b57",
                       "a#b#c", "\u00a0GetWeather\u00a0", "\ufeffBom"]),
      st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\n\r#"),
              min_size=1, max_size=10).filter(lambda s: s.strip()))


@st.composite
def seq_split_cases(draw, max_utterances=6):
  """A seq.in / seq.out / label split: clean (the reader must return it exactly) or mutated."""
  utterances = []
  for _ in range(draw(st.integers(0, max_utterances))):
    utterance_words = draw(st.lists(words(), min_size=1, max_size=8))
    tags = draw(st.lists(valid_tags(), min_size=len(utterance_words),
                         max_size=len(utterance_words)))
    if draw(st.integers(0, 99)) == 0:  # a 10,000-word line
      repeat = 10000 // len(utterance_words) + 1
      utterance_words, tags = (utterance_words * repeat)[:10000], (tags * repeat)[:10000]
    utterances.append([utterance_words, tags, draw(seq_labels())])
  nasty = draw(st.booleans())  # else clean: the reader must give back exactly what was written
  text_mutations = draw(st.lists(st.tuples(
      st.sampled_from(["bad_tag", "empty_utterance", "drop_tag", "empty_label", "extra_tag"]),
      st.integers(0, 100), bioish_tags()), max_size=2)) if utterances and nasty else []
  for kind, index, tag in text_mutations:
    words_, tags, _ = utterances[index % len(utterances)]
    if kind == "bad_tag" and tags:  # an earlier drop_tag may have emptied a one-word line
      tags[index % len(tags)] = tag
    elif kind == "empty_utterance":
      words_.clear()
    elif kind == "drop_tag" and tags:
      tags.pop()
    elif kind == "empty_label":
      utterances[index % len(utterances)][2] = draw(st.sampled_from(["", " ", "\t", "a##b", "#"]))
    elif kind == "extra_tag":
      tags.append(tag)
  line_end = draw(st.sampled_from(["\n", "\r\n"]))
  final_newline = draw(st.booleans())
  files = {}
  for file_name, column in (("seq.in", 0), ("seq.out", 1), ("label", 2)):
    lines = []
    for utterance in utterances:
      if column == 2:
        lines.append(utterance[2])
      else:
        separators = draw(st.lists(st.sampled_from(NASTY_SEPARATORS), min_size=1, max_size=3))
        items = utterance[column]
        lines.append("".join(item + (separators[i % len(separators)] if i + 1 < len(items) else "")
                             for i, item in enumerate(items)))
    text = line_end.join(lines) + (line_end if lines and final_newline else "")
    if draw(st.booleans()) or text.startswith("\ufeff"):  # the reader drops exactly one BOM
      text = "\ufeff" + text
    files[file_name] = text.encode("utf-8")
  mutations = draw(st.lists(byte_mutations(list(files)), min_size=0 if text_mutations else 1,
                            max_size=2)) if nasty else []
  for mutation in mutations:
    apply_byte_mutation(files, mutation)
  policy = draw(mostly(st.sampled_from(readers.MULTI_INTENT_POLICIES),
                       st.sampled_from(["", "ATOMIC", "last"]), 3))
  clean = bool(utterances) and not text_mutations and not mutations
  return {"files": files, "policy": policy, "clean": clean,
          "expected": [(w, t, l) for w, t, l in utterances] if clean else None}


def _expected_intent(label: str, policy: str) -> str:
  label = label.strip()
  return label.split("#")[0] if policy == "first" else label


def check_read_seq_split(ctx, case):
  with ctx.scratch() as root:
    split_dir = os.path.join(root, "train")
    write_files(split_dir, case["files"])
    try:
      split = readers.read_seq_split(split_dir, "train", case["policy"])
    except InputError as error:
      expect(not case["clean"], lambda: f"clean split rejected: {error}")
      max_line = max([count_lines(data) for data in case["files"].values()] + [0]) + 1
      return expect_input_error(error, [split_dir], max_line)
    except ValueError as error:
      if case["policy"] in readers.MULTI_INTENT_POLICIES:
        raise  # not the project's own error: uncontrolled
      return expect_value_error(error)
    expect(case["policy"] in readers.MULTI_INTENT_POLICIES, "unknown policy accepted")
    expect_well_formed_split(split, "train")
    expect(len(split.examples) == count_lines(case["files"]["seq.in"]),
           "not one example per line of seq.in")
    expect(split.files == tuple(os.path.join(split_dir, name) for name in readers.SEQ_FILES),
           "split.files")
    strict_ok = all(_decodes_strictly(data) for data in case["files"].values())
    expect((split.bad_bytes == 0) == strict_ok,
           lambda: f"bad_bytes {split.bad_bytes} but strict decoding ok={strict_ok}")
    if case["clean"]:
      got = [(list(e.words), list(e.slot_tags), e.intent) for e in split.examples]
      want = [(w, t, _expected_intent(l, case["policy"])) for w, t, l in case["expected"]]
      expect(got == want, lambda: f"read {got!r:.400} but wrote {want!r:.400}")
    return RESULT


def _decodes_strictly(data: bytes) -> bool:
  try:
    data.decode("utf-8")
  except UnicodeDecodeError:
    return False
  return True


# ---------------------------------------------------------------------------------------------
# Target: read_seq_corpus.


@st.composite
def seq_corpus_cases(draw):
  directories = draw(st.lists(st.sampled_from(["train", "dev", "valid", "test"]), unique=True,
                              max_size=4))
  splits = {directory: draw(seq_split_cases(max_utterances=3)) for directory in directories}
  policy = draw(st.sampled_from(readers.MULTI_INTENT_POLICIES))
  for split in splits.values():
    split["policy"] = policy
  read = draw(st.lists(st.sampled_from(["train", "dev", "test"]), unique=True, max_size=3))
  return {"splits": splits, "read": read, "policy": policy,
          "missing_root": draw(st.integers(0, 49)) == 0}


def check_read_seq_corpus(ctx, case):
  with ctx.scratch() as root:
    data_dir = os.path.join(root, "corpus")
    if not case["missing_root"]:
      os.makedirs(data_dir)
      for directory, split in case["splits"].items():
        write_files(os.path.join(data_dir, directory), split["files"])
    try:
      corpus = readers.read_seq_corpus(data_dir, case["read"], case["policy"])
    except InputError as error:
      return expect_input_error(error, [data_dir])
    expect(list(corpus) == list(case["read"]), lambda: f"splits {list(corpus)}")
    for name, split in corpus.items():
      expect_well_formed_split(split, name)
      directory = name if name in case["splits"] else "valid"
      expect(os.path.dirname(split.files[0]) == os.path.join(data_dir, directory),
             lambda: f"{name} read from {split.files[0]}")
    return RESULT


# ---------------------------------------------------------------------------------------------
# Target: read_snips_json_split.

INTENT_NAMES = ["PlayMusic", "Get Weather", "\u5317\u4eac", "e\u0301", "\U0001F600", "a#b",
                " lead", "-", "x" * 100, "\x01ctl", "\ufeffBom", "trail\t"]


def intent_names():
  return st.one_of(
      st.sampled_from(INTENT_NAMES),
      st.text(st.characters(exclude_categories=("Cs",), exclude_characters="/\x00"), min_size=1,
              max_size=10).filter(lambda s: s not in (".", "..") and len(s.encode()) < 100))


def json_values():
  scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), any_strings(),
                      st.sampled_from(["\ud800", "a\udfffb"]))
  return st.recursive(scalars, lambda children: st.one_of(
      st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)),
                      max_leaves=8)


ENTITY_NAMES = ["artist", "city", "playlist_owner", "\u5317\u4eac", "a-b", "B-x"]
NASTY_SNIPS_FILES = [None, None, "structure", "bytes", "deep", "big_int", "surrogate",
                     "other_split", "missing"]  # None: all files valid


def snips_utterances():
  """A valid SNIPS JSON utterance: chunks with nasty text, the first one holding a word."""
  chunk = st.fixed_dictionaries({"text": any_strings()},
                                optional={"entity": st.sampled_from(ENTITY_NAMES)})
  first = st.fixed_dictionaries(
      {"text": st.tuples(words(), any_strings()).map(" ".join)},
      optional={"entity": st.sampled_from(ENTITY_NAMES)})
  return st.tuples(first, st.lists(chunk, max_size=4)).map(
      lambda chunks: {"data": [chunks[0]] + chunks[1]})


def snips_structures(intent):
  """Anything from a valid document to arbitrary JSON, with broken parts anywhere."""
  entity = mostly(st.sampled_from(ENTITY_NAMES),
                  st.one_of(st.sampled_from(["", " x", "a b", "x\n", "\ud800", 5, None, ["x"]]),
                            st.text(max_size=6)), 30)
  text = mostly(any_strings(), st.sampled_from(["\ud800", "a\udfffb", " ", ""]), 10)
  chunk = mostly(st.fixed_dictionaries({"text": text}, optional={"entity": entity}),
                 json_values(), 10)
  utterance = mostly(st.fixed_dictionaries({"data": st.lists(chunk, max_size=5)}), json_values(),
                     10)
  keys = st.one_of(st.just(intent), st.text(max_size=5))
  return mostly(st.dictionaries(keys, st.lists(utterance, max_size=5), min_size=1, max_size=2),
                json_values(), 20)


@st.composite
def snips_json_cases(draw):
  split = draw(mostly(st.sampled_from(["train", "dev"]),
                      st.sampled_from(["test", "", "validate", "TRAIN", "train "]), 5))
  pattern = readers.SNIPS_JSON_FILE_PATTERNS.get(split, "x_{intent}.json")
  names = draw(st.lists(intent_names(), unique=True, min_size=1, max_size=3))
  nasty_kind, nasty_index = draw(st.sampled_from(NASTY_SNIPS_FILES)), draw(st.integers(0, 2))
  intents = []
  for index, name in enumerate(names):
    kind = nasty_kind if index == nasty_index % len(names) and nasty_kind else "valid"
    document = (draw(snips_structures(name)) if kind == "structure"
                else {name: draw(st.lists(snips_utterances(), min_size=1, max_size=4))})
    if kind == "surrogate":
      document[name][0]["data"].append({"text": draw(st.sampled_from(["\ud800", "a\udfffb"]))})
    text = json.dumps(document, ensure_ascii=draw(st.booleans()) or kind == "surrogate",
                      indent=draw(st.sampled_from([None, 1])))
    data = text.encode("utf-8", errors="surrogatepass")
    if kind == "deep":
      depth = draw(st.sampled_from([50000, 5000, 1000, 100]))  # hypothesis raises the limit
      data = ("{%s: " % json.dumps(name) + "[" * depth + "]" * depth + "}").encode()
    elif kind == "big_int":
      digits = draw(st.sampled_from([5000, 4301, 4300]))  # Python's limit is 4300
      data = ("{%s: %s}" % (json.dumps(name), "9" * digits)).encode()
    if draw(st.booleans()):
      data = b"\xef\xbb\xbf" + data
    files = {pattern.format(intent=name): data}
    if kind == "bytes":
      for mutation in draw(st.lists(byte_mutations(list(files)), min_size=1, max_size=2)):
        apply_byte_mutation(files, mutation)
    elif kind == "other_split":
      files = {readers.SNIPS_JSON_FILE_PATTERNS["dev" if split == "train" else "train"].format(
          intent=name): data}
    elif kind == "missing":
      files = {}
    intents.append((name, files))
  if draw(st.integers(0, 29)) == 0:  # a directory name that is not UTF-8
    intents.append((b"bad\xff", {b"train_bad\xff_full.json": b'{"x": []}'}))
  return {"split": split, "intents": intents, "stray_file": draw(st.integers(0, 19)) == 0}


def check_read_snips_json_split(ctx, case):
  with ctx.scratch() as root:
    raw_dir = os.path.join(root, "raw")
    os.makedirs(raw_dir)
    if case["stray_file"]:
      with open(os.path.join(raw_dir, "README.txt"), "w") as f:
        f.write("not an intent\n")
    for name, files in case["intents"]:
      intent_dir = os.path.join(os.fsencode(raw_dir), os.fsencode(name))
      os.makedirs(intent_dir, exist_ok=True)
      write_files(intent_dir, {os.fsencode(n): d for n, d in files.items()})
    try:
      split = readers.read_snips_json_split(raw_dir, case["split"])
    except InputError as error:
      return expect_input_error(error, [raw_dir])
    except ValueError as error:
      if case["split"] in readers.SNIPS_JSON_FILE_PATTERNS:
        raise  # not the project's own error: uncontrolled
      return expect_value_error(error)
    expect(case["split"] in readers.SNIPS_JSON_FILE_PATTERNS, "unknown split accepted")
    expect_well_formed_split(split, case["split"], stripped_intents=False)
    names = {name for name, _ in case["intents"] if isinstance(name, str)}
    expect({e.intent for e in split.examples} <= names, "intent is not a directory name")
    return RESULT


# ---------------------------------------------------------------------------------------------
# Target: word-piece alignment (align_words, convert_example, words_to_predict_feature).


@st.composite
def alignment_cases(draw, tokenizer_names=("uncased", "cased", "tiny")):
  mode = draw(st.sampled_from(["example", "predict", "pieces"]))
  max_seq_length = draw(mostly(st.integers(3, 64), st.integers(-3, 600), 20))
  if mode == "pieces":
    pieces = draw(st.lists(mostly(st.lists(st.text(max_size=4), min_size=1, max_size=4),
                                  st.just([]), 5), max_size=20))
    return {"mode": mode, "pieces": pieces, "max_seq_length": max_seq_length}
  word_list = draw(st.lists(mostly(words(), any_strings(), 10), max_size=20))
  if draw(st.integers(0, 99)) == 0:
    word_list = (word_list * 10000 or ["w"] * 10000)[:10000]
  tags = [draw(valid_tags()) for _ in range(min(len(word_list), 30))]
  tags = (tags * (len(word_list) // max(len(tags), 1) + 1))[:len(word_list)]
  if draw(st.integers(0, 9)) == 0:
    tags = tags[:-1] if tags else ["O"]  # one tag too few or too many
  known_tags = draw(st.lists(valid_tags(), max_size=6)) + tags[:draw(st.integers(0, 5))]
  return {"mode": mode, "words": word_list, "tags": tags, "known_tags": known_tags,
          "intent": draw(st.sampled_from(["A", "B", "Unseen"])),
          "tokenizer": draw(st.sampled_from(list(tokenizer_names))),
          "max_seq_length": max_seq_length}


def _kept_words(pieces_per_word, max_seq_length) -> int:
  """How many leading words fit in max_seq_length - 2 pieces (independent of align_words)."""
  used = 0
  for kept, pieces in enumerate(pieces_per_word):
    used += len(pieces)
    if used > max_seq_length - 2:
      return kept
  return len(pieces_per_word)


def _expect_layout(tokens, mask, kept, pieces_per_word, max_seq_length):
  expect(kept == _kept_words(pieces_per_word, max_seq_length),
         lambda: f"kept {kept} words, expected {_kept_words(pieces_per_word, max_seq_length)}")
  want = ([features.CLS_TOKEN] + [p for pieces in pieces_per_word[:kept] for p in pieces]
          + [features.SEP_TOKEN])
  expect(list(tokens) == want, lambda: f"tokens {list(tokens)!r:.300}")
  want_mask = [0] + [m for pieces in pieces_per_word[:kept]
                     for m in [1] + [0] * (len(pieces) - 1)] + [0]
  expect(list(mask) == want_mask, "first_piece_mask")
  expect(2 <= len(tokens) <= max_seq_length, "length")


def check_alignment(ctx, case):
  max_seq_length = case["max_seq_length"]
  if case["mode"] == "pieces":
    try:
      tokens, mask, kept = features.align_words(case["pieces"], max_seq_length)
    except ValueError as error:
      if max_seq_length >= 3 and all(case["pieces"]):
        raise  # valid arguments
      return expect_value_error(error)
    _expect_layout(tokens, mask, kept, case["pieces"], max_seq_length)
    return RESULT
  tokenizer = ctx.tokenizers[case["tokenizer"]]
  word_list = case["words"]
  label_maps = LabelMaps.from_labels(["A", "B"], [case["known_tags"]])
  try:
    if case["mode"] == "predict":
      ids, mask, kept = features.words_to_predict_feature(word_list, tokenizer, max_seq_length)
    else:
      example = NluExample("fuzz-0", tuple(word_list), tuple(case["tags"]), case["intent"])
      feature = features.convert_example(example, 7, tokenizer, label_maps, max_seq_length)
      ids, mask, kept = feature.input_ids, feature.first_piece_mask, feature.num_words_kept
  except ValueError as error:
    if max_seq_length >= 3 and (case["mode"] == "predict" or len(case["tags"]) == len(word_list)):
      raise  # valid arguments
    return expect_value_error(error)
  expect(max_seq_length >= 3, "max_seq_length < 3 accepted")
  pieces_per_word = [tokenizer.tokenize(word) or [features.UNK_TOKEN] for word in word_list]
  tokens = tokenizer.convert_ids_to_tokens(list(ids))
  _expect_layout(tokens, mask, kept, pieces_per_word, max_seq_length)
  expect(all(0 <= i < len(tokenizer.vocab) for i in ids), "id out of the vocabulary")
  if case["mode"] == "example":
    expect(len(case["tags"]) == len(word_list), "tag count mismatch accepted")
    n = len(feature.input_ids)
    expect(len(feature.segment_ids) == n == len(feature.slot_ids) and not any(feature.segment_ids),
           "feature lists differ in length")
    firsts = [p for p, is_first in enumerate(mask) if is_first]
    expect([feature.slot_ids[p] for p in firsts]
           == [label_maps.slot_tag_id(t) for t in case["tags"][:kept]], "slot ids")
    expect(all(feature.slot_ids[p] == 0 for p in range(n) if not mask[p]), "slot id off piece")
    expect(feature.intent_id == (UNKNOWN_ID if case["intent"] == "Unseen"
                                 else label_maps.intent_id(case["intent"])), "intent id")
    expect(feature.num_words == len(word_list) and feature.example_index == 7, "counts")
  return RESULT


# ---------------------------------------------------------------------------------------------
# Target: tags_to_spans.


@st.composite
def span_cases(draw):
  tags = draw(st.lists(bioish_tags(), max_size=12))
  word_list = draw(st.lists(words(), min_size=len(tags), max_size=len(tags)))
  if draw(st.integers(0, 19)) == 0:
    word_list = word_list[1:] if word_list else ["extra"]
  return {"words": word_list, "tags": tags}


def reference_spans(word_list, tags):
  """Lenient BIO chunking written out: I-x continues only an x span; anything else starts one."""
  spans, current = [], None  # current: [slot, start]
  for index, tag in enumerate(tags + ["O"]):
    prefix, slot = (tag[0], tag[2:]) if tag != "O" else ("O", None)
    continues = prefix == "I" and current is not None and current[0] == slot
    if current is not None and not continues:
      spans.append({"slot": current[0], "text": " ".join(word_list[current[1]:index]),
                    "start": current[1], "end": index})
      current = None
    if prefix in "BI" and not continues:
      current = [slot, index]
  return spans


def check_tags_to_spans(ctx, case):  # pylint: disable=unused-argument
  word_list, tags = case["words"], case["tags"]
  valid = len(word_list) == len(tags) and all(
      tag == "O" or re.fullmatch(r"[BI]-.+", tag, re.DOTALL) for tag in tags)
  try:
    spans = metrics.tags_to_spans(word_list, tags)
  except ValueError as error:
    if valid:
      raise  # valid arguments
    return expect_value_error(error)
  expect(valid, lambda: f"invalid tags accepted: {tags!r}")
  expect(spans == reference_spans(list(word_list), list(tags)),
         lambda: f"spans {spans!r} != reference {reference_spans(word_list, tags)!r}")
  return RESULT


# ---------------------------------------------------------------------------------------------
# Target: the predictor on raw text (random stand-in model, and a real tiny export).

NASTY_TEXTS = ["", " ", "\t\r\n", "\u3000\u2028\u00a0", "\u200b\u200c\u200d\ufeff\u2060",
               "\x00\x01\x02", "play \x00 adele", "\ufffd\ufffd", "e\u0301\u0301\u0301",
               "!" * 300, "x" * 500, "[CLS] [SEP] [UNK]",
               "\U0001F468\u200D\U0001F469\u200D\U0001F467",
               "\u202eevil\u202c text", "weather in \u5317\u4eac"]


@st.composite
def predict_texts(draw):
  kind = draw(st.integers(0, 99))
  if kind < 2:  # 10,000 words
    return " ".join((draw(st.lists(words(), min_size=1, max_size=3)) * 10000)[:10000])
  if kind < 15:
    return draw(st.binary(max_size=60)).decode("utf-8", errors="replace")
  if kind < 30:
    return draw(st.sampled_from(NASTY_TEXTS))
  return draw(any_strings())


def predict_cases():
  return st.fixed_dictionaries({
      "texts": st.lists(predict_texts(), min_size=1, max_size=4),
      "max_seq_length": mostly(st.integers(3, 16), st.integers(3, 128), 20),
      "seed": st.integers(0, 2**32 - 1),
  })


class _Tensor:
  """The one method NluPredictor.predict calls on the serving signature's outputs."""

  def __init__(self, value):
    self._value = value

  def numpy(self):
    return self._value


class RandomModel:
  """Stands in for the SavedModel signature: random but well-formed outputs."""

  def __init__(self, seed, num_intents, num_tags):
    self.rng = np.random.RandomState(seed % 2**32)
    self.num_intents, self.num_tags = num_intents, num_tags

  def __call__(self, input_ids, input_mask, segment_ids, first_piece_mask=None):
    input_ids, input_mask = input_ids.numpy(), input_mask.numpy()
    expect(input_ids.shape == input_mask.shape == tuple(segment_ids.shape), "input shapes")
    if first_piece_mask is not None:  # a CRF export's extra input
      first_piece_mask = first_piece_mask.numpy()
      expect(first_piece_mask.shape == input_ids.shape, "first_piece_mask shape")
      expect(not np.any(first_piece_mask * (1 - input_mask)), "first pieces inside the input")
    batch, length = input_ids.shape
    probabilities = self.rng.dirichlet(np.ones(self.num_intents), batch).astype(np.float32)
    return {
        "intent_id": _Tensor(probabilities.argmax(axis=-1).astype(np.int32)),
        "intent_probabilities": _Tensor(probabilities),
        "slot_ids": _Tensor(self.rng.randint(0, self.num_tags, (batch, length)).astype(np.int32)),
        "slot_confidence": _Tensor(self.rng.uniform(0, 1, (batch, length)).astype(np.float32)),
    }


def random_model_predictor(ctx, seed, max_seq_length):
  predictor = predict.NluPredictor.__new__(predict.NluPredictor)
  predictor.label_maps = LabelMaps(intents=("GetWeather", "PlayMusic", "\u5929\u6c14"),
                                   slot_tags=("O", "B-artist", "B-city", "I-artist", "I-city",
                                              "B-\u5730\u70b9", "I-\u5730\u70b9"))
  predictor.max_seq_length = max_seq_length
  predictor.tokenizer = ctx.tokenizers[ctx.tokenizer_names[0]]
  model = RandomModel(seed, len(predictor.label_maps.intents), len(predictor.label_maps.slot_tags))
  predictor._serve = model  # pylint: disable=protected-access
  predictor.takes_first_piece_mask = bool(seed % 2)
  return predictor


def expect_well_formed_predictions(predictor, texts, results) -> None:
  expect(isinstance(results, list) and len(results) == len(texts), "one result per text")
  for text, result in zip(texts, results):
    expect(isinstance(result, dict)
           and set(result) == {"text", "intent", "intents", "slots", "truncated_words"},
           "result keys")
    expect(result["text"] == text, "result text differs from the input")
    word_list = text.split()
    offsets = predict.word_offsets(text)
    expect([text[start:end] for start, end in offsets] == word_list,
           lambda: f"word_offsets {offsets} do not give text.split()")
    if not word_list:
      expect(result["intent"] is None and result["slots"] == []
             and result["truncated_words"] == 0, "empty text must give no prediction")
      continue
    intent = result["intent"]
    expect(result["intents"] == [intent], lambda: f"intents {result['intents']!r}")
    expect(isinstance(intent, dict) and intent["name"] in predictor.label_maps.intents
           and isinstance(intent["probability"], float)
           and -1e-6 <= intent["probability"] <= 1 + 1e-6, lambda: f"intent {intent!r}")
    pieces = [predictor.tokenizer.tokenize(word) or [features.UNK_TOKEN] for word in word_list]
    kept = _kept_words(pieces, predictor.max_seq_length)
    expect(result["truncated_words"] == len(word_list) - kept,
           lambda: f"truncated_words {result['truncated_words']}, expected {len(word_list) - kept}")
    previous_end = 0
    for span in result["slots"]:
      expect(set(span) == {"slot", "text", "start", "end", "word_start", "word_end",
                           "confidence"}, "span keys")
      expect(span["text"] == text[span["start"]:span["end"]],
             lambda: f"span text {span['text']!r} != text[{span['start']}:{span['end']}]")
      expect(previous_end <= span["word_start"] < span["word_end"] <= kept,
             lambda: f"span words {span['word_start']}:{span['word_end']} (kept {kept})")
      expect(span["start"] == offsets[span["word_start"]][0]
             and span["end"] == offsets[span["word_end"] - 1][1], "span offsets")
      expect(span["slot"] in {tag[2:] for tag in predictor.label_maps.slot_tags},
             "unknown slot")
      expect(isinstance(span["confidence"], float) and -1e-6 <= span["confidence"] <= 1 + 1e-6,
             "confidence")
      previous_end = span["word_end"]
    json.dumps(result, ensure_ascii=False).encode("utf-8")  # what predict_lines writes


def check_predict_random_model(ctx, case):
  predictor = random_model_predictor(ctx, case["seed"], case["max_seq_length"])
  results = predictor.predict(case["texts"])
  expect_well_formed_predictions(predictor, case["texts"], results)
  return RESULT


def check_predict_export(ctx, case):
  predictor = ctx.export_predictor
  results = predictor.predict(case["texts"])
  expect_well_formed_predictions(predictor, case["texts"], results)
  return RESULT


# ---------------------------------------------------------------------------------------------
# Target: read_utterances.


def utterance_files():
  fragments = st.one_of(any_strings().map(lambda s: s.encode("utf-8")), nasty_bytes())
  return st.fixed_dictionaries({
      "data": st.one_of(st.binary(max_size=200), st.lists(fragments, max_size=20).map(b"".join)),
      "kind": mostly(st.just("file"), st.sampled_from(["missing", "directory"]), 5),
  })


def check_read_utterances(ctx, case):
  with ctx.scratch() as root:
    path = os.path.join(root, "utterances.txt")
    if case["kind"] == "file":
      with open(path, "wb") as f:
        f.write(case["data"])
    elif case["kind"] == "directory":
      os.makedirs(path)
    try:
      lines = predict.read_utterances(path)
    except InputError as error:
      expect(case["kind"] != "file", lambda: f"readable file rejected: {error}")
      return expect_input_error(error, [path])
    expect(case["kind"] == "file", "missing file read")
    text = case["data"].decode("utf-8", errors="replace")
    text = text[1:] if text.startswith("\ufeff") else text
    expect(isinstance(lines, list) and all(isinstance(line, str) for line in lines), "not strs")
    expect(len(lines) == count_lines(case["data"]),
           lambda: f"{len(lines)} utterances for {count_lines(case['data'])} lines")
    expect(all("\n" not in line and _encodable(line) for line in lines), "bad line")
    rebuilt = "\n".join(lines)
    expect(rebuilt == text.replace("\r\n", "\n").removesuffix("\n"), "lines lose text")
    return RESULT


# ---------------------------------------------------------------------------------------------
# Target: run_bert_nlu.py flags -> RunConfig or UsageError.


@functools.lru_cache(maxsize=None)
def run_bert_nlu_module():
  if REPO_DIR not in sys.path:
    sys.path.insert(0, REPO_DIR)
  import run_bert_nlu  # pylint: disable=g-import-not-at-top
  return run_bert_nlu


def run_flag_names():
  from absl import flags  # pylint: disable=g-import-not-at-top
  module = run_bert_nlu_module()
  return sorted(flag.name for flag in flags.FLAGS.get_flags_for_module(module.__name__))


RAW_FLAG_STRINGS = ["nan", "inf", "-inf", "1e999", "-1e999", "0x10", "1_000", " 7 ", "\uff11\uff12",
                    "", "true", "maybe", "0", "-0", "3", "2147483648", "1" * 40, "5:1", "1:2",
                    "a:b:c", "seq", "snips_json", "first"]


def argv_strings():
  return any_strings().map(lambda s: s.replace("\x00", ""))


def flag_value_strategies(ctx):
  """name -> strategy of (raw?, value) for every flag of run_bert_nlu.py."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  run_bert_nlu_module()
  tiny_config = os.path.join(ctx.tiny_bert_dir, "bert_config.json")
  paths = {
      "data_dir": [ctx.tiny_corpus_dir, "", "/nonexistent", tiny_config],
      "bert_dir": [ctx.tiny_bert_dir, "", "/nonexistent", ctx.tiny_corpus_dir],
      "bert_config_file": [tiny_config, ""] + ctx.bad_bert_configs,
      "vocab_file": [os.path.join(ctx.tiny_bert_dir, "vocab.txt"), "", "/nonexistent"],
      "init_checkpoint": [os.path.join(ctx.tiny_bert_dir, "bert_model.ckpt"), "", "/x"],
      "profile_steps": ["", "1:2", "5:1", "0:3", "a:b", "1:2:3", ":", " 1 : 2 ",
                        "\uff11:\uff12", "99999999999999999999:1", "-1:2"],
  }
  strategies = {}
  for name in run_flag_names():
    flag = flags.FLAGS[name]
    kind = flag.flag_type()
    if kind == "int":
      typed = st.one_of(st.integers(-3, 70), st.integers(),
                        st.sampled_from([2**31 - 1, 2**31, 2**63, -2**63, 10**30]))
    elif kind == "float":
      typed = st.one_of(st.floats(), st.floats(-1, 2),
                        st.sampled_from([0.0, -0.0, 1.0, 1 - 1e-12, 5e-324, 1e308]))
    elif kind == "bool":
      typed = st.booleans() | (st.none() if flag.default is None else st.booleans())
    elif kind.endswith("enum"):
      typed = st.sampled_from(list(flag.parser.enum_values))
    else:  # argv cannot carry NUL characters
      typed = st.one_of(st.sampled_from(paths.get(name, [""])), argv_strings())
    raw = st.one_of(st.sampled_from(RAW_FLAG_STRINGS), argv_strings())
    strategies[name] = st.one_of(st.tuples(st.just(False), typed), st.tuples(st.just(True), raw))
  return strategies


def flag_cases(ctx):
  strategies = flag_value_strategies(ctx)
  names = sorted(strategies)
  return st.lists(st.sampled_from(names), unique=True, max_size=5).flatmap(
      lambda chosen: st.fixed_dictionaries({name: strategies[name] for name in chosen}))


@contextlib.contextmanager
def run_flags(ctx, settings):
  """Sets run_bert_nlu.py's flags (raw strings through the flag parser), restores them after."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  names = run_flag_names()
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  try:
    flags.FLAGS.data_dir = ctx.tiny_corpus_dir
    flags.FLAGS.bert_dir = ctx.tiny_bert_dir
    for name, (raw, value) in settings.items():
      if raw:
        flags.FLAGS[name].parse(value)
      else:
        setattr(flags.FLAGS, name, value)
    yield flags.FLAGS
  finally:
    for name in names:
      flags.FLAGS[name].unparse()


def expect_sane_run_config(run_config) -> None:
  from bert_nlu import config as config_lib  # pylint: disable=g-import-not-at-top
  expect(isinstance(run_config, config_lib.RunConfig), "not a RunConfig")
  data, model, train = run_config.data, run_config.model, run_config.train
  with open(model.bert_config_file) as f:
    bert_config = json.load(f)
  expect(3 <= data.max_seq_length <= bert_config["max_position_embeddings"], "max_seq_length")
  expect(os.path.isdir(data.data_dir) and run_config.output_dir, "data_dir / output_dir")
  expect(os.path.isfile(model.vocab_file) and os.path.exists(model.init_checkpoint + ".index"),
         "model files")
  expect(isinstance(model.do_lower_case, bool), "do_lower_case")
  expect(model.num_hidden_layers is None
         or 1 <= model.num_hidden_layers <= bert_config["num_hidden_layers"], "num_hidden_layers")
  for value in (train.train_batch_size, train.eval_batch_size, train.save_checkpoints_steps,
                train.save_summary_steps, train.keep_checkpoint_max):
    expect(1 <= value <= 2**31 - 1, "an integer flag out of range")
  expect(train.eval_steps is None or 1 <= train.eval_steps <= 2**31 - 1, "eval_steps")
  expect(0 <= train.early_stopping_evals <= 2**31 - 1, "early_stopping_evals")
  expect(train.eval_every_steps is None or 1 <= train.eval_every_steps <= 2**31 - 1,
         "eval_every_steps")
  expect(train.evaluator == "in_process"
         or train.evaluation_interval == train.save_checkpoints_steps,
         "the checkpoint evaluator with an evaluation interval other than the checkpoints'")
  expect(0 < train.learning_rate < math.inf and 0 < train.num_train_epochs < math.inf
         and 0 <= train.weight_decay < math.inf and 0 <= model.intent_loss_weight < math.inf,
         "a float flag not finite / out of range")
  expect(0 < getattr(train, "head_learning_rate_multiplier", 1.0) < math.inf,
         "head_learning_rate_multiplier")
  expect(0 < train.layer_learning_rate_decay <= 1, "layer_learning_rate_decay")
  expect(0 <= train.weight_average_decay < 1, "weight_average_decay")
  expect(0 <= train.warmup_proportion < 1 and 0 <= model.head_dropout < 1, "a proportion")
  steps = run_config.profile.steps
  expect(steps is None or 1 <= steps[0] <= steps[1], "profile steps")


def check_flags(ctx, case):
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  module = run_bert_nlu_module()
  try:
    with run_flags(ctx, case):
      run_config = module.build_run_config()
  except flags.Error as error:  # the value does not parse: app.run prints usage and exits
    # A typed value is rejected only by a bound the flag declares (e.g. lower_bound=1), and then
    # absl's message names the flag.
    named = set(re.findall(r"--(\w+)", str(error)))
    expect(any(raw for raw, _ in case.values()) or named & set(case),
           lambda: f"typed value rejected without naming its flag: {error}")
    expect(str(error).strip(), "flags.Error without message")
    return CONTROLLED
  except app.UsageError as error:
    named = re.findall(r"--(\w+)", str(error))
    expect(set(named) & set(run_flag_names()), lambda: f"UsageError names no flag: {error}")
    return CONTROLLED
  expect_sane_run_config(run_config)
  return RESULT


# ---------------------------------------------------------------------------------------------
# The targets, shared with bench/fuzz.py: name -> (check, strategy factory(ctx), needs export).

TARGETS = {
    "read_seq_split": (check_read_seq_split, lambda ctx: seq_split_cases(), False),
    "read_seq_corpus": (check_read_seq_corpus, lambda ctx: seq_corpus_cases(), False),
    "read_snips_json_split": (check_read_snips_json_split, lambda ctx: snips_json_cases(), False),
    "alignment": (check_alignment, lambda ctx: alignment_cases(ctx.tokenizer_names), False),
    "tags_to_spans": (check_tags_to_spans, lambda ctx: span_cases(), False),
    "read_utterances": (check_read_utterances, lambda ctx: utterance_files(), False),
    "predict_random_model": (check_predict_random_model, lambda ctx: predict_cases(), False),
    "predict_export": (check_predict_export, lambda ctx: predict_cases(), True),
    "flags": (check_flags, flag_cases, False),
}


# ---------------------------------------------------------------------------------------------
# Tests.


@pytest.fixture(scope="module")
def ctx(tiny_bert_dir, tiny_corpus_dir, tmp_path_factory):
  return FuzzContext(str(tmp_path_factory.mktemp("fuzz_scratch")), tiny_bert_dir, tiny_corpus_dir)


@pytest.fixture(scope="module")
def export_ctx(ctx, tmp_path_factory):
  export_dir = train_tiny_export(ctx.tiny_bert_dir, ctx.tiny_corpus_dir,
                                 str(tmp_path_factory.mktemp("fuzz_run")))
  return FuzzContext(ctx.scratch_root, ctx.tiny_bert_dir, ctx.tiny_corpus_dir, export_dir)


def _ci_settings(max_examples=CI_EXAMPLES):
  return hypothesis.settings(
      max_examples=max_examples, deadline=None, derandomize=True, database=None,
      suppress_health_check=list(hypothesis.HealthCheck))


def _run_target(name, context, max_examples=CI_EXAMPLES):
  check, strategy, _ = TARGETS[name]

  @_ci_settings(max_examples)
  @hypothesis.given(strategy(context))
  def run(case):
    check(context, case)

  run()


@pytest.mark.parametrize("name", [name for name, (_, _, needs_export) in TARGETS.items()
                                  if not needs_export])
def test_target_never_crashes_uncontrolled(ctx, name):
  _run_target(name, ctx)


def test_word_piece_targets_use_the_real_vocabulary_where_the_product_keeps_it(ctx):
  assert ctx.real_vocab_file == os.path.join(convert.default_cache_dir(), "all-MiniLM-L6-v2",
                                             "vocab.txt")
  if ctx.missing_real_vocabulary:
    pytest.skip(ctx.missing_real_vocabulary)
  with open(ctx.real_vocab_file, encoding="utf-8") as f:
    vocabulary_size = sum(1 for _ in f)
  assert vocabulary_size > 20000  # a real BERT vocabulary, not the tiny one
  for name in ("uncased", "cased"):
    assert len(ctx.tokenizers[name].vocab) == vocabulary_size, name
  assert ctx.tokenizer_names[0] == "uncased"  # the predictor targets' tokenizer
  assert ctx.tokenizers["uncased"].tokenize("Unaffable") == ["una", "##ffa", "##ble"]
  drawn = set()

  @_ci_settings(50)
  @hypothesis.given(alignment_cases(ctx.tokenizer_names))
  def collect(case):
    drawn.add(case.get("tokenizer"))

  collect()
  assert {"uncased", "cased", "tiny"} <= drawn


def test_the_real_vocabulary_is_found_through_bert_nlu_cache(monkeypatch, tmp_path):
  monkeypatch.setenv(convert.CACHE_DIR_ENV, str(tmp_path))
  assert real_vocab_file() == str(tmp_path / "all-MiniLM-L6-v2" / "vocab.txt")
  missing = FuzzContext(str(tmp_path), str(tmp_path), str(tmp_path))
  assert str(tmp_path) in missing.missing_real_vocabulary
  (tmp_path / "all-MiniLM-L6-v2").mkdir()
  (tmp_path / "all-MiniLM-L6-v2" / "vocab.txt").write_text("[PAD]\n[UNK]\n")
  assert FuzzContext(str(tmp_path), str(tmp_path), str(tmp_path)).missing_real_vocabulary == ""


def test_predict_export_never_crashes_uncontrolled(export_ctx):
  _run_target("predict_export", export_ctx, max_examples=60)


def _nasty_cases():
  with open(os.path.join(NASTY_DIR, "expected.json"), encoding="utf-8") as f:
    return json.load(f)


def test_nasty_corpus_is_small_and_every_file_has_an_expectation():
  cases = _nasty_cases()
  total = 0
  for directory, _, file_names in os.walk(NASTY_DIR):
    for file_name in file_names:
      path = os.path.join(directory, file_name)
      total += os.path.getsize(path)
      relative = os.path.relpath(path, NASTY_DIR)
      assert relative == "expected.json" or any(
          relative == case or relative.startswith(case + os.sep) for case in cases), relative
  assert total < 50_000


def _check_nasty_reader_case(case, expected, path):
  kind = expected["kind"]
  read = {
      "seq_split": lambda: readers.read_seq_split(path, "train"),
      "seq_corpus": lambda: readers.read_seq_corpus(path),
      "snips_json": lambda: readers.read_snips_json_split(path, expected["split"]),
  }[kind]
  if expected["expect"] == "InputError":
    with pytest.raises(InputError) as error_info:
      read()
    expect_input_error(error_info.value, [os.path.abspath(path)])
    if expected.get("file") is not None:
      assert os.path.abspath(error_info.value.path) == os.path.abspath(
          os.path.join(path, expected["file"])), (case, str(error_info.value))
    assert error_info.value.line == expected["line"], (case, str(error_info.value))
    return
  result = read()
  if kind == "seq_corpus":
    for name, split in result.items():
      expect_well_formed_split(split, name)
    assert {name: len(split) for name, split in result.items()} == expected["splits"]
  else:
    expect_well_formed_split(result, "train", stripped_intents=kind == "seq_split")
    assert (len(result), result.bad_bytes) == (expected["examples"], expected["bad_bytes"]), case


def test_nasty_corpus(ctx):
  for case, expected in sorted(_nasty_cases().items()):
    path = os.path.join(NASTY_DIR, case)
    kind = expected["kind"]
    if kind in ("seq_split", "seq_corpus", "snips_json"):
      _check_nasty_reader_case(case, expected, path)
    elif kind == "utterances":
      lines = predict.read_utterances(path)
      assert len(lines) == expected["lines"]
      assert check_read_utterances(ctx, {"data": open(path, "rb").read(), "kind": "file"}) == RESULT
      for max_seq_length in (3, 16, 64):
        assert check_predict_random_model(
            ctx, {"texts": lines, "max_seq_length": max_seq_length, "seed": 0}) == RESULT
        for tokenizer in ctx.tokenizer_names:
          for mode in ("example", "predict"):
            word_lists = [line.split() for line in lines] + [[""], [" "], ["\u200b"]]
            for word_list in word_lists:
              assert check_alignment(ctx, {
                  "mode": mode, "words": word_list, "tags": ["O"] * len(word_list),
                  "known_tags": ["O"], "intent": "A", "tokenizer": tokenizer,
                  "max_seq_length": max_seq_length}) == RESULT
    elif kind == "tags":
      with open(path, encoding="utf-8") as f:
        for tag_case in json.load(f):
          outcome = check_tags_to_spans(ctx, tag_case)
          assert outcome == (RESULT if tag_case["expect"] == "spans" else CONTROLLED), tag_case
    elif kind == "flags":
      with open(path, encoding="utf-8") as f:
        flag_file_cases = json.load(f)
      for flag_case in flag_file_cases:
        _check_nasty_flag_case(ctx, flag_case)
    else:
      raise AssertionError(f"unknown kind {kind!r} in expected.json")


def _check_nasty_flag_case(ctx, flag_case):
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  settings = {}
  for arg in flag_case["args"]:
    name, _, value = arg[2:].partition("=")
    if not _ and name.startswith("no"):  # --norun_train
      name, value = name[2:], "false"
    settings[name] = (True, value)
  outcome = check_flags(ctx, settings)
  expected = flag_case["expect"]
  assert outcome == (RESULT if expected == "config" else CONTROLLED), flag_case
  if expected == "config":
    return
  with pytest.raises(flags.Error if expected == "parse_error" else app.UsageError) as error_info:
    with run_flags(ctx, settings):
      run_bert_nlu_module().build_run_config()
  assert flag_case["flag"] in str(error_info.value), (flag_case, str(error_info.value))


def test_nasty_predict_on_real_export(export_ctx):
  lines = predict.read_utterances(os.path.join(NASTY_DIR, "utterances", "utterances.txt"))
  long_text = " ".join(["play", "adele"] * 5000)  # the 10,000-word line, made here
  texts = lines + [long_text]
  results = export_ctx.export_predictor.predict(texts)
  expect_well_formed_predictions(export_ctx.export_predictor, texts, results)
  assert results[-1]["truncated_words"] == 10000 - (16 - 2)
  assert results[2]["intent"] is None and results[3]["intent"] is None  # empty, whitespace only


def test_ten_thousand_word_line_is_read_and_truncated(ctx):
  with ctx.scratch() as root:
    words_line = " ".join(f"w{i % 50}" for i in range(10000))
    write_files(root, {"seq.in": (words_line + "\n").encode(),
                       "seq.out": (" ".join(["O"] * 10000) + "\n").encode(),
                       "label": b"Long\n"})
    split = readers.read_seq_split(root, "train")
  expect_well_formed_split(split, "train")
  assert len(split.examples[0].words) == 10000
  feature = features.convert_example(split.examples[0], 0, ctx.tokenizers[ctx.tokenizer_names[0]],
                                     LabelMaps.from_labels(["Long"], [["O"]]), 64)
  assert feature.length <= 64 and feature.truncated and feature.num_words == 10000
