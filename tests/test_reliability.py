"""Non-finite loss guard and graceful SIGTERM/Ctrl-C stop."""

import glob
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


def _checkpoints_with_non_finite_weights(output_dir):
  """Every checkpoint under `output_dir` (rotation and kept best copies) -> its non-finite
  float variables; empty lists only when all are finite."""
  found = {}
  for index in glob.glob(os.path.join(output_dir, "**", "*.ckpt-*.index"), recursive=True):
    checkpoint = index[:-len(".index")]
    reader = tf.train.load_checkpoint(checkpoint)
    found[checkpoint] = [
        name for name in reader.get_variable_to_shape_map()
        if np.asarray(reader.get_tensor(name)).dtype.kind == "f"
        and not np.all(np.isfinite(reader.get_tensor(name)))]
  return found


def test_non_finite_gradients_at_a_save_step_are_never_checkpointed(
    tiny_bert_dir, tiny_corpus_dir, tmp_path, poison_gradients):
  # The update 49 -> 50 gets infinite gradients (finite loss): NaN weights at step 50, exactly
  # when the Estimator's saver is due to write model.ckpt-50.
  poison_gradients([49])
  config = make_config(tiny_bert_dir, tiny_corpus_dir, str(tmp_path / "run"),
                       save_checkpoints_steps=25, keep_checkpoint_max=10)
  with pytest.raises(hooks.NonFiniteLossError) as error:
    train.run(config)
  assert error.value.step == 50
  assert "gradient norm=nan" in str(error.value) or "gradient norm=inf" in str(error.value)
  assert error.value.last_checkpoint.endswith("model.ckpt-25")
  assert "Last good checkpoint: " + error.value.last_checkpoint in str(error.value)
  assert tf.train.latest_checkpoint(config.output_dir) == error.value.last_checkpoint
  saved = _checkpoints_with_non_finite_weights(config.output_dir)
  assert any(path.endswith("model.ckpt-25") for path in saved), sorted(saved)
  assert not any(path.endswith("model.ckpt-50") for path in saved), sorted(saved)
  assert all(not names for names in saved.values()), saved


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


def test_a_second_signal_stops_at_once_and_the_unevaluated_checkpoint_is_evaluated_on_rerun(tiny_bert_dir, tiny_corpus_dir, tmp_path):
  """The first SIGTERM asks for a checkpoint after the current step; the run is held inside the
  first best-model export (a 600 s fault-point pause), so that step cannot end soon: a SIGINT
  then must stop the process at once, saving nothing."""
  output_dir = str(tmp_path / "run")
  command = _tiny_run_command(tiny_bert_dir, tiny_corpus_dir, output_dir, epochs=200)
  command[command.index("--save_checkpoints_steps=100000")] = "--save_checkpoints_steps=5"
  env = dict(os.environ, BERT_NLU_FAULT_POINT="after_export", BERT_NLU_FAULT_PAUSE_SECONDS="600")
  log_path = tmp_path / "log.txt"
  with open(log_path, "w") as log:
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    try:
      deadline = time.time() + 540
      while time.time() < deadline and "FAULT-POINT after_export" not in log_path.read_text():
        assert process.poll() is None, log_path.read_text()[-3000:]
        time.sleep(0.2)
      assert "FAULT-POINT after_export" in log_path.read_text(), log_path.read_text()[-3000:]
      process.send_signal(signal.SIGTERM)
      deadline = time.time() + 60
      while time.time() < deadline and "SIGTERM received" not in log_path.read_text():
        time.sleep(0.1)
      assert process.poll() is None, log_path.read_text()[-3000:]  # still paused: one signal
      assert "SIGTERM received" in log_path.read_text(), log_path.read_text()[-3000:]
      sent = time.time()
      process.send_signal(signal.SIGINT)
      try:
        exit_code = process.wait(timeout=120)
      except subprocess.TimeoutExpired:
        pytest.fail("still running 120 s after the second signal:\n" +
                    log_path.read_text()[-3000:])
      stopped_after = time.time() - sent
    finally:
      if process.poll() is None:
        process.kill()
        process.wait()
  text = log_path.read_text()
  assert exit_code != 0
  assert stopped_after < 120  # not the 600 s pause, not the end of training
  assert "second SIGINT: stopping without saving" in text, text[-3000:]
  assert "checkpoint saved to" not in text
  assert tf.train.latest_checkpoint(output_dir).endswith("model.ckpt-5")  # nothing newer
  # model.ckpt-5 was saved, its evaluation never recorded: a rerun evaluates it (a schedule of
  # 4 steps, which the checkpoint already covers, so nothing else is trained or evaluated).
  exporter = hooks.BestModelExporter(output_dir, NluTask.selection_metric, None, {})
  assert 5 not in exporter.evaluated_steps()
  rerun = subprocess.run(
      _tiny_run_command(tiny_bert_dir, tiny_corpus_dir, output_dir, epochs=0.2),
      capture_output=True, text=True, cwd=REPO, timeout=300)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert re.search(r"Evaluating checkpoint \S+model\.ckpt-5, which was saved but not evaluated",
                   rerun.stderr), rerun.stderr[-3000:]
  assert 5 in exporter.evaluated_steps()
  assert hooks.read_best(output_dir)["step"] == 5
