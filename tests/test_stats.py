"""The data-statistics command: counts, labels, length percentiles, truncation, bad bytes."""

import os
import subprocess
import sys

from bert_nlu.compat import make_tokenizer
from bert_nlu.data import readers, stats
from bert_nlu.data.features import word_pieces
from conftest import corpus_vocabulary, make_corpus

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setup(tmp_path):
  corpus = make_corpus(str(tmp_path / "corpus"), sizes=(("train", 40), ("dev", 10), ("test", 10)))
  with open(os.path.join(corpus, "dev", "seq.in"), "ab") as f:  # one extra line with a bad byte
    f.write(b"play adele\xff\n")
  with open(os.path.join(corpus, "dev", "seq.out"), "a") as f:
    f.write("O B-artist\n")
  with open(os.path.join(corpus, "dev", "label"), "a") as f:
    f.write("UnseenIntent\n")
  vocab = tmp_path / "vocab.txt"
  vocab.write_text("\n".join(corpus_vocabulary()) + "\n")
  return corpus, str(vocab)


def test_split_statistics(tmp_path):
  corpus, vocab = _setup(tmp_path)
  splits = readers.read_seq_corpus(corpus)
  tokenizer = make_tokenizer(vocab, True)
  rows = stats.corpus_statistics(splits, tokenizer, max_seq_length=5)
  by_split = {row["split"]: row for row in rows}
  assert by_split["train"]["examples"] == 40 and by_split["dev"]["examples"] == 11
  assert by_split["dev"]["bad_bytes"] == 1
  assert by_split["dev"]["intents_not_in_train"] == 1
  lengths = [sum(len(p) for p in word_pieces(tokenizer, e.words)) + 2
             for e in splits["train"].examples]
  assert by_split["train"]["pieces_p100"] == max(lengths)
  assert by_split["train"]["truncated"] == sum(length > 5 for length in lengths)
  table = stats.format_statistics(rows)
  assert "pieces_p95" in table and "truncated" in table


def test_stats_command_prints_table_and_reports_bad_input(tmp_path):
  corpus, vocab = _setup(tmp_path)
  command = [sys.executable, "-m", "bert_nlu.data.stats", f"--data_dir={corpus}",
             f"--vocab_file={vocab}"]
  result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "examples" in result.stdout and "bad_bytes" in result.stdout
  os.remove(os.path.join(corpus, "test", "label"))
  result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
  assert result.returncode == 2
  assert "label" in result.stderr and "Traceback" not in result.stderr


def test_covering_length_and_truncation_at_other_lengths():
  assert stats.covering_length([5, 3, 9, 4], 1.0) == 9
  assert stats.covering_length([5, 3, 9, 4], 0.75) == 5
  assert stats.covering_length(list(range(1, 1001)) + [5000], 0.999) == 1000
  report = stats.LengthReport("dev", pieces_per_word=((1, 1, 1), (2, 3, 1)), max_seq_length=5)
  assert report.lengths == [5, 8]
  assert (report.num_truncated, report.words_lost) == (1, 2)  # 3 pieces fit: the 2-piece word
  wider = report.at(8)
  assert (wider.num_truncated, wider.words_lost) == (0, 0)
  assert stats.truncation_warning([wider]) is None
  assert stats.covering_max_seq_length([report], position_limit=512) == 8
  assert stats.covering_max_seq_length([report], position_limit=6) == 6
