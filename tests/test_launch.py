"""bert_nlu.launch: the TF_CONFIG of each task of a loopback cluster, and a real 2-worker +
evaluator run of a tiny model (bounded in time, every task exits by itself)."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from bert_nlu import launch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cluster_has_a_chief_workers_and_an_evaluator_outside_the_cluster():
  configs = launch.cluster_tf_configs(3, True, [1001, 1002, 1003])
  assert sorted(configs) == ["chief", "evaluator", "worker_0", "worker_1"]
  cluster = {"chief": ["127.0.0.1:1001"], "worker": ["127.0.0.1:1002", "127.0.0.1:1003"]}
  assert all(config["cluster"] == cluster for config in configs.values())
  assert configs["worker_1"]["task"] == {"type": "worker", "index": 1}
  assert configs["evaluator"]["task"] == {"type": "evaluator", "index": 0}
  assert "worker" not in launch.cluster_tf_configs(1, False, [1001])["chief"]["cluster"]


def test_free_loopback_ports_are_distinct():
  ports = launch.free_loopback_ports(3)
  assert len(set(ports)) == 3 and all(0 < port < 65536 for port in ports)


def test_training_tasks_leave_the_final_evaluation_to_the_evaluator():
  flags = ["--output_dir=x"]
  assert launch.task_command("chief", flags, True)[-2:] == ["--distribution=multi_worker",
                                                            "--norun_eval"]
  assert launch.task_command("evaluator", flags, True)[-1] == "--distribution=multi_worker"
  assert launch.task_command("chief", flags, False)[-1] == "--distribution=multi_worker"


def _launch_command(tiny_bert_dir, tiny_corpus_dir, output_dir, logs, epochs,
                    encoder_flag=None):
  """encoder_flag: e.g. --hub_module=PATH instead of --bert_dir=<tiny_bert_dir>."""
  return [sys.executable, "-m", "bert_nlu.launch", "--workers=2", f"--task_log_dir={logs}",
          "--timeout_secs=900", "--", encoder_flag or f"--bert_dir={tiny_bert_dir}",
          f"--data_dir={tiny_corpus_dir}", f"--output_dir={output_dir}", "--max_seq_length=16",
          "--train_batch_size=16", f"--num_train_epochs={epochs}", "--save_checkpoints_steps=5",
          "--save_summary_steps=5", "--learning_rate=1e-3", "--keep_checkpoint_max=20",
          "--verbosity=1"]  # the tasks' TensorFlow log lines, which the assertions read


def test_two_workers_and_an_evaluator_train_evaluate_and_exit_by_themselves(tiny_bert_dir,
                                                                            tiny_corpus_dir,
                                                                            tmp_path):
  output_dir = tmp_path / "run"
  logs = tmp_path / "logs"
  command = _launch_command(tiny_bert_dir, tiny_corpus_dir, output_dir, logs, 1)
  env = dict(os.environ, PYTHONPATH=REPO)
  finished = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=1000)
  assert finished.returncode == 0, finished.stdout + finished.stderr
  assert "all tasks finished" in finished.stdout
  # 150 examples / global batch 16 -> 10 steps; the chief checkpointed every 5.
  with open(output_dir / "checkpoint") as f:
    assert 'model_checkpoint_path: "model.ckpt-10"' in f.read()
  # The worker stepped with the chief: its own (temporary) checkpoints reach the same step.
  assert list((output_dir / "tmp_worker_0").glob("model.ckpt-10.index"))
  # The evaluator evaluated the chief's checkpoints and did the final evaluation.
  evaluator_log = (logs / "evaluator.log").read_text()
  assert re.search(r"Saving dict for global step 10", evaluator_log)
  # It waited for new checkpoints between polls (at throttle_secs=0 it polls in a busy loop).
  assert "EvalSpec.throttle_secs is set as 0" not in evaluator_log
  results = json.loads((output_dir / "eval_results.json").read_text())
  assert results["checkpoint"].startswith(str(output_dir))
  assert "eval_results.json" not in (logs / "chief.log").read_text()


def test_two_workers_fine_tune_a_hub_module(plain_keras_hub_module, tiny_corpus_dir, tmp_path):
  """--hub_module under MultiWorkerMirroredStrategy: the strategy is built before the module is
  loaded (which starts TensorFlow's runtime, too late then for the collectives); the workers step
  together (equal module weights), the module trains, the checkpoints hold one entry per
  variable, and the evaluator evaluates the whole dev set."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  output_dir = tmp_path / "run"
  command = _launch_command(None, tiny_corpus_dir, output_dir, tmp_path / "logs", 1,
                            encoder_flag=f"--hub_module={plain_keras_hub_module}")
  finished = subprocess.run(command, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO),
                            capture_output=True, text=True, timeout=1000)
  assert finished.returncode == 0, finished.stdout + finished.stderr
  chief = tf.train.load_checkpoint(str(output_dir / "model.ckpt-10"))
  worker = tf.train.load_checkpoint(str(output_dir / "tmp_worker_0" / "model.ckpt-10"))
  module = tf.saved_model.load(plain_keras_hub_module)
  for variable in module.trainable_variables:
    name = "bert/" + variable.name.split(":")[0]
    np.testing.assert_array_equal(chief.get_tensor(name), worker.get_tensor(name))
    assert np.abs(chief.get_tensor(name) - variable.numpy()).max() > 1e-4, name
  assert not [n for n, _ in tf.train.list_variables(str(output_dir / "model.ckpt-10"))
              if "replica_" in n]
  results = json.loads((output_dir / "eval_results.json").read_text())
  assert results["splits"]["dev"]["num_examples"] == 30


def test_a_killed_worker_stops_the_cluster_and_a_restart_resumes_from_the_chief(
    tiny_bert_dir, tiny_corpus_dir, tmp_path):
  """Collective all-reduce needs every worker: when one dies the others cannot step, so the
  launcher stops the whole cluster; launched again, it resumes from the chief's last checkpoint."""
  output_dir = tmp_path / "run"
  env = dict(os.environ, PYTHONPATH=REPO)
  command = _launch_command(tiny_bert_dir, tiny_corpus_dir, output_dir, tmp_path / "logs1", 3)
  launcher = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
  worker_pid = None
  for line in launcher.stdout:
    match = re.match(r"started worker_0 \(pid (\d+)\)", line)
    if match:
      worker_pid = int(match.group(1))
      break
  deadline = time.time() + 800
  while not (output_dir / "model.ckpt-5.index").exists():
    assert time.time() < deadline and launcher.poll() is None
    time.sleep(1)
  os.kill(worker_pid, signal.SIGKILL)
  output, _ = launcher.communicate(timeout=120)  # the launcher stops the rest by itself
  assert launcher.returncode != 0
  assert "worker_0 exited with -9: stopping the cluster" in output
  with open(output_dir / "checkpoint") as f:
    last_step = int(re.search(r'model_checkpoint_path: "model.ckpt-(\d+)"', f.read()).group(1))
  assert last_step >= 5

  command = _launch_command(tiny_bert_dir, tiny_corpus_dir, output_dir, tmp_path / "logs2", 3)
  finished = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=1000)
  assert finished.returncode == 0, finished.stdout + finished.stderr
  chief_log = (tmp_path / "logs2" / "chief.log").read_text()
  assert f"Restoring parameters from {output_dir}/model.ckpt-{last_step}" in chief_log
  with open(output_dir / "checkpoint") as f:  # 3 epochs: 150 x 3 / 16 -> 29 steps
    assert 'model_checkpoint_path: "model.ckpt-29"' in f.read()
