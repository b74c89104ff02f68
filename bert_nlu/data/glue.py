"""GLUE corpora: the TSV layout of each task -> `Split`s of `SentencePairExample`s, and label sets.

Every task directory holds `train.tsv` and `dev.tsv` (MNLI: `dev_matched.tsv` and
`dev_mismatched.tsv`), laid out as the GLUE distribution (and google-research/bert's
run_classifier.py processors) read them:

| task  | header | columns | text_a | text_b | label            | labels                           |
|-------|--------|---------|--------|--------|------------------|----------------------------------|
| CoLA  | no     | 4       | 3      | -      | 1                | 0, 1                             |
| SST-2 | yes    | 2       | 0      | -      | 1                | 0, 1                             |
| MRPC  | yes    | 5       | 3      | 4      | 0                | 0, 1                             |
| STS-B | yes    | 10      | 7      | 8      | 9 (float score)  | regression, 0..5                 |
| QQP   | yes    | 6       | 3      | 4      | 5                | 0, 1                             |
| MNLI  | yes    | 12/16   | 8      | 9      | last (gold)      | contradiction, entailment, neutral |
| QNLI  | yes    | 4       | 1      | 2      | 3                | entailment, not_entailment       |
| RTE   | yes    | 4       | 1      | 2      | 3                | entailment, not_entailment       |
| WNLI  | yes    | 4       | 1      | 2      | 3                | 0, 1                             |
| SNLI  | yes    | 11/15   | 7      | 8      | last (gold)      | contradiction, entailment, neutral |

A file with a header must have that many columns on every row (MNLI and SNLI train carry one
annotator label, dev five, so the header says which); CoLA has no header and 4 columns. Only the
SNLI test split is labelled (GLUE keeps the other test labels private), so only SNLI reads "test".

Rules:
  * Lines are split on tabs only, never parsed as CSV: MRPC and SST-2 texts hold `"` characters
    that are text, not quotes. A leading byte order mark (MRPC) is dropped, "\\r\\n" counts as
    "\\n", undecodable bytes become U+FFFD and are counted (`Split.bad_bytes`).
  * Errors name file, line and problem (`InputError`): a missing task file, a row with the wrong
    number of columns, an unknown label, a non-numeric (or non-finite) STS-B score, a file with no
    examples.
  * MNLI and SNLI mark pairs whose annotators did not agree with gold label "-": they have no
    label and are skipped (counted in a warning), as the GLUE baselines and BERT do.
"""

import dataclasses
import logging
import math
import os
from typing import Dict, Optional, Sequence, Tuple

from bert_nlu import io_utils
from bert_nlu.data.examples import SentencePairExample, Split
from bert_nlu.data.readers import read_text_file, split_lines
from bert_nlu.errors import InputError

_logger = logging.getLogger(__name__)

NO_GOLD_LABEL = "-"
_EXCERPT_CHARS = 60


@dataclasses.dataclass(frozen=True)
class GlueLayout:
  """How one GLUE task's TSV files are laid out and labelled.

  Attributes:
    name: the task's canonical name (also its directory name in the GLUE download).
    labels: the class labels as the files spell them; () for a regression task.
    text_a_column, text_b_column: 0-based columns of the sentences (text_b None: single sentence).
    label_column: column of the label or score; negative counts from the end (MNLI's gold label
      is the last of a varying number of columns).
    has_header: the first line names the columns (and fixes the column count).
    num_columns: the column count of a file without a header (CoLA).
    split_files: {split name: file name}; the first evaluation split is "dev".
    skipped_label: a label value meaning "no gold label": such rows are skipped.
  """
  name: str
  labels: Tuple[str, ...]
  text_a_column: int
  text_b_column: Optional[int]
  label_column: int
  has_header: bool = True
  num_columns: Optional[int] = None
  split_files: Tuple[Tuple[str, str], ...] = (("train", "train.tsv"), ("dev", "dev.tsv"))
  skipped_label: Optional[str] = None

  @property
  def is_regression(self) -> bool:
    return not self.labels

  @property
  def is_pair(self) -> bool:
    return self.text_b_column is not None

  @property
  def split_names(self) -> Tuple[str, ...]:
    return tuple(name for name, _ in self.split_files)

  @property
  def evaluation_splits(self) -> Tuple[str, ...]:
    """Labelled splits other than train and test, "dev" first (MNLI: dev, dev_mismatched)."""
    return tuple(name for name in self.split_names if name not in ("train", "test"))

  def file_name(self, split: str) -> str:
    files = dict(self.split_files)
    if split not in files:
      raise ValueError(f"{self.name} has no labelled {split!r} split (it has "
                       f"{', '.join(self.split_names)})")
    return files[split]


_BINARY = ("0", "1")
_NLI_2 = ("entailment", "not_entailment")
_NLI_3 = ("contradiction", "entailment", "neutral")

GLUE_LAYOUTS: Dict[str, GlueLayout] = {
    layout.name: layout for layout in (
        GlueLayout("CoLA", _BINARY, text_a_column=3, text_b_column=None, label_column=1,
                   has_header=False, num_columns=4),
        GlueLayout("SST-2", _BINARY, text_a_column=0, text_b_column=None, label_column=1),
        GlueLayout("MRPC", _BINARY, text_a_column=3, text_b_column=4, label_column=0),
        GlueLayout("STS-B", (), text_a_column=7, text_b_column=8, label_column=9),
        GlueLayout("QQP", _BINARY, text_a_column=3, text_b_column=4, label_column=5),
        GlueLayout("MNLI", _NLI_3, text_a_column=8, text_b_column=9, label_column=-1,
                   split_files=(("train", "train.tsv"), ("dev", "dev_matched.tsv"),
                                ("dev_mismatched", "dev_mismatched.tsv")),
                   skipped_label=NO_GOLD_LABEL),
        GlueLayout("QNLI", _NLI_2, text_a_column=1, text_b_column=2, label_column=3),
        GlueLayout("RTE", _NLI_2, text_a_column=1, text_b_column=2, label_column=3),
        GlueLayout("WNLI", _BINARY, text_a_column=1, text_b_column=2, label_column=3),
        GlueLayout("SNLI", _NLI_3, text_a_column=7, text_b_column=8, label_column=-1,
                   split_files=(("train", "train.tsv"), ("dev", "dev.tsv"),
                                ("test", "test.tsv")),
                   skipped_label=NO_GOLD_LABEL),
    )
}
GLUE_TASK_NAMES = tuple(GLUE_LAYOUTS)


def canonical_task_name(name: str) -> str:
  """The canonical spelling of a GLUE task name given in any case ("sts-b" -> "STS-B").

  Raises:
    ValueError: not a GLUE task.
  """
  by_lower = {task.lower(): task for task in GLUE_TASK_NAMES}
  if name.lower() not in by_lower:
    raise ValueError(f"unknown GLUE task {name!r}; expected one of {', '.join(GLUE_TASK_NAMES)}")
  return by_lower[name.lower()]


@dataclasses.dataclass(frozen=True)
class GlueLabels:
  """The label vocabulary of a GLUE task (fixed by GLUE, not read from train); position = id.

  Saved as label_maps.json in the run directory and the export, like the NLU `LabelMaps`.

  Attributes:
    task: canonical task name.
    labels: class labels; () for a regression task.
  """
  task: str
  labels: Tuple[str, ...]

  @classmethod
  def for_task(cls, task: str) -> "GlueLabels":
    return cls(task=task, labels=GLUE_LAYOUTS[task].labels)

  @property
  def is_regression(self) -> bool:
    return not self.labels

  def label_id(self, label: str) -> int:
    return self.labels.index(label)

  def to_json_dict(self) -> dict:
    return {"glue_task": self.task, "labels": list(self.labels)}

  @classmethod
  def from_json_dict(cls, obj: dict, source: str = "label_maps.json") -> "GlueLabels":
    try:
      task, labels = obj["glue_task"], obj["labels"]
    except (KeyError, TypeError) as e:
      raise InputError(source, f"not a GLUE label map (missing key {e})") from None
    if task not in GLUE_LAYOUTS or tuple(labels) != GLUE_LAYOUTS[task].labels:
      raise InputError(source, f"GLUE label map {task!r} {labels!r} is not a GLUE task's")
    return cls(task=task, labels=tuple(labels))

  def save(self, path: str) -> None:
    io_utils.atomic_write_json(path, self.to_json_dict())

  @classmethod
  def load(cls, path: str) -> "GlueLabels":
    return cls.from_json_dict(io_utils.read_json(path), source=path)


def _excerpt(text: str) -> str:
  return repr(text if len(text) <= _EXCERPT_CHARS else text[:_EXCERPT_CHARS] + "...")


def parse_score(text: str, path: str, line: int) -> float:
  """An STS-B similarity score; InputError unless it is a finite number."""
  try:
    score = float(text)
  except ValueError:
    raise InputError(path, f"STS-B score {_excerpt(text)} is not a number", line) from None
  if not math.isfinite(score):
    raise InputError(path, f"STS-B score {_excerpt(text)} is not finite", line)
  return score


def _row_example(layout: GlueLayout, fields: Sequence[str], guid: str, path: str,
                 line: int) -> SentencePairExample:
  text_b = fields[layout.text_b_column] if layout.is_pair else None
  raw_label = fields[layout.label_column]
  if layout.is_regression:
    return SentencePairExample(guid, fields[layout.text_a_column], text_b,
                               score=parse_score(raw_label, path, line), source=path, line=line)
  if raw_label not in layout.labels:
    raise InputError(path, f"unknown {layout.name} label {_excerpt(raw_label)} (column "
                     f"{layout.label_column % len(fields) + 1}); expected one of "
                     f"{', '.join(layout.labels)}", line)
  return SentencePairExample(guid, fields[layout.text_a_column], text_b, label=raw_label,
                             source=path, line=line)


def _needed_columns(layout: GlueLayout) -> int:
  columns = [layout.text_a_column, layout.label_column]
  if layout.is_pair:
    columns.append(layout.text_b_column)
  return max(column + 1 if column >= 0 else -column for column in columns)


def read_glue_file(path: str, layout: GlueLayout, name: str) -> Split:
  """Reads one labelled GLUE TSV file.

  Args:
    path: the file.
    layout: its task's layout.
    name: split name; examples get guid "<name>-<0-based row index>".

  Returns:
    The split, examples in file order (rows without a gold label skipped, see module docstring).

  Raises:
    InputError: the file is missing, a row has the wrong column count, a label is unknown, an
      STS-B score is not a number, or the file holds no examples.
  """
  if not os.path.isfile(path):
    raise InputError(path, f"missing {layout.name} file: {os.path.basename(path)} not found in "
                     f"{os.path.dirname(path) or '.'}")
  text, bad_bytes = read_text_file(path)
  lines = split_lines(text)
  first_row = 0
  num_columns = layout.num_columns
  if layout.has_header:
    if not lines:
      raise InputError(path, f"empty {layout.name} file: no header row")
    num_columns = len(lines[0].split("\t"))
    if num_columns < _needed_columns(layout):
      raise InputError(path, f"header has {num_columns} columns; the {layout.name} layout needs "
                       f"at least {_needed_columns(layout)} (is this a {layout.name} file?)", 1)
    first_row = 1
  examples = []
  skipped = 0
  for index in range(first_row, len(lines)):
    line_number = index + 1
    fields = lines[index].split("\t")
    if len(fields) != num_columns:
      where = "the header's" if layout.has_header else f"the {layout.name} layout's"
      raise InputError(path, f"{len(fields)} tab-separated columns, expected {num_columns} "
                       f"({where})", line_number)
    if layout.skipped_label is not None and fields[layout.label_column] == layout.skipped_label:
      skipped += 1
      continue
    examples.append(_row_example(layout, fields, f"{name}-{index - first_row}", path,
                                 line_number))
  if skipped:
    _logger.warning("%s: skipped %d rows without a gold label (%r)", path, skipped,
                    layout.skipped_label)
  if not examples:
    raise InputError(path, f"no {layout.name} examples")
  return Split(name=name, examples=tuple(examples), bad_bytes=bad_bytes, files=(path,))


def read_glue_splits(data_dir: str, task: str, splits: Sequence[str]) -> Dict[str, Split]:
  """Reads the named splits of a GLUE task directory.

  Args:
    data_dir: the task's directory (e.g. glue/MRPC).
    task: GLUE task name in any case.
    splits: split names ("train", "dev", MNLI's "dev_mismatched", SNLI's "test").

  Returns:
    {split name: Split} in the order of `splits`.

  Raises:
    ValueError: unknown task, or a split the task does not have labelled.
    InputError: see `read_glue_file`.
  """
  layout = GLUE_LAYOUTS[canonical_task_name(task)]
  if not os.path.isdir(data_dir):
    raise InputError(data_dir, f"{layout.name} directory not found")
  return {name: read_glue_file(os.path.join(data_dir, layout.file_name(name)), layout, name)
          for name in splits}
