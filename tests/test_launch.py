"""bert_nlu.launch: the TF_CONFIG of each task of a loopback cluster, and a real 2-worker +
evaluator run of a tiny model (bounded in time, every task exits by itself)."""

import json
import os
import re
import subprocess
import sys

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
