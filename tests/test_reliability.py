"""Non-finite loss guard and graceful SIGTERM/Ctrl-C stop."""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from bert_nlu import hooks, train
from bert_nlu.compat import tf
from bert_nlu.tasks.nlu import NluTask
from bert_nlu.testing import tiny_training_config as make_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tiny_bert_dir, tiny_corpus_dir,
                                                                 tmp_path, monkeypatch):
  real_build_losses = NluTask.build_losses

  def poisoned_build_losses(self, logits, features):
    loss, parts = real_build_losses(self, logits, features)
    step = tf.train.get_or_create_global_step()
    poison = tf.where(step >= 30, tf.constant(np.nan), tf.constant(0.0))
    return loss + poison, parts

  monkeypatch.setattr(NluTask, "build_losses", poisoned_build_losses)
  config = make_config(tiny_bert_dir, tiny_corpus_dir, str(tmp_path / "run"),
                       save_checkpoints_steps=25)
  with pytest.raises(hooks.NonFiniteLossError) as error:
    train.run(config)
  assert error.value.step == 31  # the 31st step (global step 30 -> 31) produced NaN
  last_good = error.value.last_checkpoint
  assert last_good.endswith("model.ckpt-25")
  assert "step 31" in str(error.value) and "model.ckpt-25" in str(error.value)
  assert tf.train.latest_checkpoint(config.output_dir) == last_good  # nothing newer was saved
  reader = tf.train.load_checkpoint(last_good)
  for name in reader.get_variable_to_shape_map():
    value = reader.get_tensor(name)
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
      assert np.all(np.isfinite(value)), name


def _tiny_run_command(bert_dir, corpus_dir, output_dir, epochs):
  return [sys.executable, os.path.join(REPO, "run_bert_nlu.py"), f"--bert_dir={bert_dir}",
          f"--data_dir={corpus_dir}", f"--output_dir={output_dir}", "--max_seq_length=16",
          "--train_batch_size=8", f"--num_train_epochs={epochs}", "--learning_rate=1e-3",
          "--save_checkpoints_steps=100000", "--save_summary_steps=1",
          "--verbosity=1"]  # the Estimator's "step = N" log lines


@pytest.mark.parametrize("sig, exit_code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_saves_checkpoint_and_exits_nonzero_then_resumes(tiny_bert_dir, tiny_corpus_dir,
                                                                tmp_path, sig, exit_code):
  output_dir = str(tmp_path / "run")
  command = _tiny_run_command(tiny_bert_dir, tiny_corpus_dir, output_dir, epochs=200)
  log_path = tmp_path / "log.txt"
  with open(log_path, "w") as log:
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    deadline = time.time() + 120
    while time.time() < deadline and "step = 11" not in log_path.read_text():
      time.sleep(0.2)
    assert process.poll() is None, log_path.read_text()[-3000:]
    process.send_signal(sig)
    assert process.wait(timeout=120) == exit_code
  text = log_path.read_text()
  match = re.search(r"stopped: (SIG\w+): training stopped at step (\d+); checkpoint saved to (\S+)\.",
                    text)
  assert match, text[-3000:]
  assert match.group(1) == sig.name
  step, checkpoint = int(match.group(2)), match.group(3)
  assert step >= 11
  assert os.path.exists(checkpoint + ".index")
  assert tf.train.latest_checkpoint(output_dir) == checkpoint
  assert not os.path.exists(os.path.join(output_dir, "eval_results.json"))
  # Rerunning a shorter schedule that the checkpoint already covers finishes without training.
  rerun = subprocess.run(
      _tiny_run_command(tiny_bert_dir, tiny_corpus_dir, output_dir, epochs=0.5),
      capture_output=True, text=True, cwd=REPO, timeout=300)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert os.path.exists(os.path.join(output_dir, "eval_results.json"))
