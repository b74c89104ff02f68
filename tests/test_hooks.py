"""The operator's progress line: its fields, and the hook that emits one per interval."""

import re

import pytest

from bert_nlu import hooks
from bert_nlu.compat import tf


def test_progress_line_fields():
  line = hooks.format_progress_line(
      step=120, total_steps=1000, steps_per_epoch=93.75, examples_per_second=45.21,
      elapsed_seconds=133, eta_seconds=965.4, loss=0.43214,
      dev_values={40: 0.85, 60: 0.9, 80: 0.9, 100: 0.88})
  assert line == ("step 120/1000 (12.0%) | epoch 1.28 | 45.2 ex/s | elapsed 0:02:13 | "
                  "ETA 0:16:05 | loss 0.4321 | dev frame last 88.00% (step 100) "
                  "best 90.00% (step 60)")  # a tie for the best: the first step that reached it
  before_dev = hooks.format_progress_line(1, 10, 5, 1.0, 3700, None, 2.0, {})
  assert "elapsed 1:01:40 | ETA - |" in before_dev
  assert before_dev.endswith("dev frame last - best -")
  glue = hooks.format_progress_line(1, 10, 5, 1.0, 3, None, 2.0, {1: 0.75, 2: 0.5},
                                    dev_metric="mcc")
  assert glue.endswith("dev mcc last 50.00% (step 2) best 75.00% (step 1)")


def test_progress_hook_emits_one_line_per_interval_with_the_run_values():
  lines = []
  dev_values = {}
  with tf.Graph().as_default():
    step = tf.train.get_or_create_global_step()
    loss = tf.cast(step, tf.float32) * 0.5 + 1.0  # read before this step's increment
    tf.add_to_collection("test_loss", loss)
    with tf.control_dependencies([loss]):
      train_op = tf.assign_add(step, 1)
    hook = hooks.ProgressHook(total_steps=7, steps_per_epoch=2.0, batch_size=8, every_n_steps=3,
                              loss_collection="test_loss", read_dev_values=lambda: dev_values,
                              emit=lines.append)
    with tf.train.MonitoredSession(hooks=[hook]) as session:
      for index in range(7):
        if index == 4:
          dev_values.update({3: 0.5, 4: 0.25})
        session.run(train_op)
  # Steps 3 and 6 (every 3), and 7 (the last one).
  assert [int(re.match(r"step (\d+)/7 ", line).group(1)) for line in lines] == [3, 6, 7]
  assert "epoch 1.50" in lines[0] and "loss 2.0000" in lines[0]  # step 3 ran with step=2
  assert lines[0].endswith("dev frame last - best -")
  # The newest and the highest, each with its step.
  assert lines[1].endswith("dev frame last 25.00% (step 4) best 50.00% (step 3)")
  assert "ETA 0:00:00" in lines[2]
  ex_per_s = float(re.search(r"\| ([\d.]+) ex/s", lines[0]).group(1))
  assert ex_per_s > 0
