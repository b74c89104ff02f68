"""GLUE TSV readers (bert_nlu/data/glue.py): layouts of every task, label sets, errors."""

import os

import pytest

from bert_nlu import testing
from bert_nlu.data import glue
from bert_nlu.errors import InputError
from conftest import real_data_dir


@pytest.mark.parametrize("task", glue.GLUE_TASK_NAMES)
def test_every_task_reads_back_what_was_written(task, tmp_path):
  layout = glue.GLUE_LAYOUTS[task]
  splits = ("train",) + layout.evaluation_splits + (("test",) if "test" in layout.split_names
                                                     else ())
  sizes = tuple((split, 5 + i) for i, split in enumerate(splits))
  corpus = testing.make_glue_corpus(str(tmp_path / task), task, sizes=sizes, seed=3)
  read = glue.read_glue_splits(corpus, task.lower(), splits)
  assert list(read) == list(splits)
  for offset, (split, size) in enumerate(sizes):
    expected = testing.glue_examples(task, size, seed=3 + offset)
    examples = read[split].examples
    assert [(e.text_a, e.text_b) for e in examples] == [(a, b) for a, b, _ in expected]
    if layout.is_regression:
      assert [e.score for e in examples] == [float(t) for _, _, t in expected]
      assert all(e.label is None for e in examples)
    else:
      assert [e.label for e in examples] == [t for _, _, t in expected]
      assert all(e.score is None for e in examples)
    # Line numbers count the header (CoLA has none) and point at the row.
    first_line = 2 if layout.has_header else 1
    assert [e.line for e in examples] == list(range(first_line, first_line + size))
    assert examples[0].guid == f"{split}-0"
    assert read[split].files == (os.path.join(corpus, layout.file_name(split)),)


def test_labels_are_the_glue_definitions():
  labels = {task: glue.GlueLabels.for_task(task).labels for task in glue.GLUE_TASK_NAMES}
  assert labels == {
      "CoLA": ("0", "1"), "SST-2": ("0", "1"), "MRPC": ("0", "1"), "STS-B": (),
      "QQP": ("0", "1"), "MNLI": ("contradiction", "entailment", "neutral"),
      "QNLI": ("entailment", "not_entailment"), "RTE": ("entailment", "not_entailment"),
      "WNLI": ("0", "1"), "SNLI": ("contradiction", "entailment", "neutral")}
  assert glue.GLUE_LAYOUTS["MNLI"].evaluation_splits == ("dev", "dev_mismatched")
  assert glue.GLUE_LAYOUTS["MNLI"].file_name("dev") == "dev_matched.tsv"


def test_task_names_are_accepted_in_any_case():
  assert glue.canonical_task_name("sts-b") == "STS-B"
  assert glue.canonical_task_name("cola") == "CoLA"
  assert glue.canonical_task_name("MNLI") == "MNLI"
  with pytest.raises(ValueError, match="unknown GLUE task 'STSB'"):
    glue.canonical_task_name("STSB")


def test_label_map_round_trip_and_rejects_other_tasks(tmp_path):
  labels = glue.GlueLabels.for_task("RTE")
  path = str(tmp_path / "label_maps.json")
  labels.save(path)
  assert glue.GlueLabels.load(path) == labels
  with pytest.raises(InputError, match="not a GLUE task's"):
    glue.GlueLabels.from_json_dict({"glue_task": "RTE", "labels": ["0", "1"]})


def test_mrpc_byte_order_mark_and_quotes_are_text_not_csv(tmp_path):
  path = tmp_path / "dev.tsv"
  path.write_text("\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
                  '1\t1\t2\t" The pie , " he said .\tHe said " the pie "\n'
                  "0\t3\t4\ta \"\"quoted\"\" word\tsecond\n", encoding="utf-8")
  split = glue.read_glue_file(str(path), glue.GLUE_LAYOUTS["MRPC"], "dev")
  assert [(e.label, e.text_a, e.text_b) for e in split.examples] == [
      ("1", '" The pie , " he said .', 'He said " the pie "'),
      ("0", 'a ""quoted"" word', "second")]


def test_rows_without_gold_label_are_skipped_in_nli(tmp_path):
  rows = [("a b", "c d", "entailment"), ("e f", "g h", "-"), ("i j", "k l", "neutral")]
  path = str(tmp_path / "train.tsv")
  testing.write_glue_file(path, "SNLI", "train", rows)
  split = glue.read_glue_file(path, glue.GLUE_LAYOUTS["SNLI"], "train")
  assert [(e.label, e.line) for e in split.examples] == [("entailment", 2), ("neutral", 4)]


def _write_lines(path, lines):
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")


def test_wrong_column_count_names_file_and_line(tmp_path):
  path = str(tmp_path / "train.tsv")
  _write_lines(path, ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tentailment",
                      "1\ta, b, c\tentailment"])
  with pytest.raises(InputError) as error:
    glue.read_glue_file(path, glue.GLUE_LAYOUTS["RTE"], "train")
  assert (error.value.path, error.value.line) == (path, 3)
  assert "3 tab-separated columns, expected 4" in error.value.problem
  # CoLA has no header: its layout fixes 4 columns.
  _write_lines(path, ["gj04\t1\t\tGood .", "gj04\t1\tBad ."])
  with pytest.raises(InputError, match=r"train.tsv:2: 3 tab-separated columns, expected 4"):
    glue.read_glue_file(path, glue.GLUE_LAYOUTS["CoLA"], "train")


def test_unknown_label_names_file_line_and_labels(tmp_path):
  path = str(tmp_path / "dev.tsv")
  _write_lines(path, ["index\tquestion\tsentence\tlabel", "0\tq\ts\tentailment",
                      "1\tq\ts\tnot_entailed"])
  with pytest.raises(InputError) as error:
    glue.read_glue_file(path, glue.GLUE_LAYOUTS["QNLI"], "dev")
  assert error.value.line == 3
  assert error.value.problem == ("unknown QNLI label 'not_entailed' (column 4); expected one of "
                                 "entailment, not_entailment")


@pytest.mark.parametrize("score", ["high", "", "nan", "inf"])
def test_non_numeric_sts_b_score_is_an_error(score, tmp_path):
  path = str(tmp_path / "train.tsv")
  rows = [("a", "b", "3.2"), ("c", "d", score)]
  testing.write_glue_file(path, "STS-B", "train", rows)
  with pytest.raises(InputError, match=r"train.tsv:3: STS-B score .* is not (a number|finite)"):
    glue.read_glue_file(path, glue.GLUE_LAYOUTS["STS-B"], "train")


def test_missing_or_empty_files_are_clear_errors(tmp_path):
  corpus = testing.make_glue_corpus(str(tmp_path / "RTE"), "RTE", sizes=(("dev", 3),))
  with pytest.raises(InputError, match=r"RTE.train.tsv: missing RTE file: train.tsv not found"):
    glue.read_glue_splits(corpus, "RTE", ("train", "dev"))
  with pytest.raises(InputError, match="RTE directory not found"):
    glue.read_glue_splits(str(tmp_path / "nowhere"), "RTE", ("dev",))
  header_only = str(tmp_path / "RTE" / "train.tsv")
  _write_lines(header_only, ["index\tsentence1\tsentence2\tlabel"])
  with pytest.raises(InputError, match="no RTE examples"):
    glue.read_glue_splits(corpus, "RTE", ("train",))
  _write_lines(header_only, ["index\tsentence"])  # an SST-2 test file given as RTE
  with pytest.raises(InputError, match=r"train.tsv:1: header has 2 columns; the RTE layout needs "
                     r"at least 4"):
    glue.read_glue_splits(corpus, "RTE", ("train",))
  with pytest.raises(ValueError, match="RTE has no labelled 'test' split"):
    glue.read_glue_splits(corpus, "RTE", ("test",))


# Rows of the GLUE files in ../shared/data/glue (header excluded).
REAL_COUNTS = {"CoLA": (8551, 1043), "MRPC": (3668, 408), "RTE": (2490, 277),
               "SST-2": (67349, 872), "STS-B": (5749, 1500), "WNLI": (635, 71)}


@pytest.mark.parametrize("task", sorted(REAL_COUNTS))
def test_real_glue_files(task):
  corpus = os.path.join(real_data_dir(), "glue", task)
  if not os.path.isdir(corpus):
    pytest.skip(f"real GLUE data not found at {corpus}")
  splits = glue.read_glue_splits(corpus, task, ("train", "dev"))
  assert (len(splits["train"]), len(splits["dev"])) == REAL_COUNTS[task]
  assert splits["train"].bad_bytes == 0
  if task == "MRPC":  # the byte order mark is not part of the header, quotes stay text
    assert splits["dev"].examples[0].text_b.startswith('" The foodservice pie business')
  if task == "STS-B":
    assert splits["dev"].examples[1].score == 4.75


def test_real_qnli_without_train_is_a_clear_error():
  corpus = os.path.join(real_data_dir(), "glue", "QNLI")
  if not os.path.isdir(corpus):
    pytest.skip(f"real GLUE data not found at {corpus}")
  assert len(glue.read_glue_splits(corpus, "qnli", ("dev",))["dev"]) == 5463
  with pytest.raises(InputError, match="missing QNLI file: train.tsv not found"):
    glue.read_glue_splits(corpus, "QNLI", ("train", "dev"))
