"""Resource faults: unwritable output, disk full, damaged checkpoints -> clear errors, no loss."""

import os
import resource
import shutil
import signal
import subprocess
import sys

import pytest

from bert_nlu import io_utils

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _command(bert_dir, corpus_dir, output_dir, epochs=2):
  return [sys.executable, os.path.join(REPO, "run_bert_nlu.py"), f"--bert_dir={bert_dir}",
          f"--data_dir={corpus_dir}", f"--output_dir={output_dir}", "--max_seq_length=16",
          "--train_batch_size=16", f"--num_train_epochs={epochs}", "--learning_rate=1e-3",
          "--save_checkpoints_steps=10", "--save_summary_steps=10",
          "--verbosity=1"]  # TensorFlow's log ("Restoring parameters from ...")


def _run(command, file_size_limit=None):
  def limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
  return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600,
                        preexec_fn=limit_file_size if file_size_limit else None)


def _assert_clean_error(result):
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  return [line for line in result.stderr.splitlines() if line.startswith("error: ")][-1]


def test_output_dir_that_cannot_be_created(tiny_bert_dir, tiny_corpus_dir, tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  result = _run(_command(tiny_bert_dir, tiny_corpus_dir, str(blocker / "run")))
  message = _assert_clean_error(result)
  assert str(blocker) in message


def test_truncated_init_checkpoint(tiny_bert_dir, tiny_corpus_dir, tmp_path):
  damaged = str(tmp_path / "bert")
  shutil.copytree(tiny_bert_dir, damaged)
  data_file = [n for n in os.listdir(damaged) if n.startswith("bert_model.ckpt.data")][0]
  path = os.path.join(damaged, data_file)
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)
  result = _run(_command(damaged, tiny_corpus_dir, str(tmp_path / "run")))
  message = _assert_clean_error(result)
  assert "bert_model.ckpt" in message and "cannot be read completely" in message


def test_damaged_newest_run_checkpoint_is_set_aside_and_the_previous_used(
    tiny_bert_dir, tiny_corpus_dir, tmp_path):
  from bert_nlu.compat import tf
  output_dir = str(tmp_path / "run")
  # Two epochs: two periodic checkpoints (no checkpoint is saved before the first step).
  first = _run(_command(tiny_bert_dir, tiny_corpus_dir, output_dir, epochs=2))
  assert first.returncode == 0, first.stderr[-3000:]
  latest = tf.train.latest_checkpoint(output_dir)
  state = tf.train.get_checkpoint_state(output_dir)
  previous = state.all_model_checkpoint_paths[-2]
  data_file = [p for p in os.listdir(output_dir)
               if p.startswith(os.path.basename(latest) + ".data")][0]
  with open(os.path.join(output_dir, data_file), "r+b") as f:
    f.truncate(100)
  second = _run(_command(tiny_bert_dir, tiny_corpus_dir, output_dir, epochs=3))
  assert second.returncode == 0, second.stderr[-3000:]
  assert "is damaged" in second.stderr
  assert f"Restoring parameters from {previous}" in second.stderr
  assert [n for n in os.listdir(output_dir) if ".damaged-" in n]  # kept for inspection


def test_disk_full_keeps_everything_written_before(tiny_bert_dir, tiny_corpus_dir, tmp_path):
  output_dir = str(tmp_path / "run")
  first = _run(_command(tiny_bert_dir, tiny_corpus_dir, output_dir, epochs=1))
  assert first.returncode == 0, first.stderr[-3000:]
  results_before = open(os.path.join(output_dir, "eval_results.json")).read()
  best_before = io_utils.read_json(os.path.join(output_dir, "best_checkpoint",
                                                "best_metrics.json"))
  # More epochs (a compatible change) with files limited to 100 kB: the next checkpoint cannot be
  # written.
  second = _run(_command(tiny_bert_dir, tiny_corpus_dir, output_dir, epochs=3),
                file_size_limit=100_000)
  assert second.returncode != 0
  assert "Traceback" not in second.stderr, second.stderr[-3000:]
  assert any(line.startswith("error: ") for line in second.stderr.splitlines())
  assert open(os.path.join(output_dir, "eval_results.json")).read() == results_before
  assert os.path.exists(best_before["checkpoint"] + ".index")
  # And with space again, the same command finishes.
  third = _run(_command(tiny_bert_dir, tiny_corpus_dir, output_dir, epochs=3))
  assert third.returncode == 0, third.stderr[-3000:]
