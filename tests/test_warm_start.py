"""Sequential fine-tuning: a fine-tuned run's checkpoint remapped to new labels by name."""

import json
import os

import numpy as np
import pytest

from bert_nlu import warm_start
from bert_nlu.compat import tf
from bert_nlu.data.labels import LabelMaps

OLD = LabelMaps(intents=("A", "B", "C"), slot_tags=("O", "B-x", "I-x"))
NEW = LabelMaps(intents=("B", "C", "D"), slot_tags=("O", "B-x", "B-y"))
HIDDEN = 8


def test_remap_label_axes_by_hand():
  old = np.arange(9.0).reshape(3, 3)  # rows and columns: labels a, b, c
  fresh = -np.ones((3, 3))
  # New labels c, a, z: (c, c) = 8, (c, a) = 6, (a, c) = 2, (a, a) = 0; z's row/column fresh.
  remapped = warm_start.remap_label_axes(old, fresh, "abc", "caz", axes=(0, 1))
  np.testing.assert_array_equal(remapped, [[8, 6, -1], [2, 0, -1], [-1, -1, -1]])
  columns = warm_start.remap_label_axes(old, -np.ones((3, 2)), "abc", "zb", axes=(1,))
  np.testing.assert_array_equal(columns, [[-1, 1], [-1, 4], [-1, 7]])


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
  """A fake fine-tuned run: best checkpoint with encoder, heads, Adam slots, a step, averages."""
  run_dir = str(tmp_path_factory.mktemp("source_run"))
  rng = np.random.RandomState(0)
  values = {
      "bert/embeddings/word_embeddings": rng.randn(20, HIDDEN).astype(np.float32),
      "bert/encoder/layer_0/output/dense/kernel": rng.randn(HIDDEN, HIDDEN).astype(np.float32),
      "intent_head/dense/kernel": rng.randn(HIDDEN, 3).astype(np.float32),
      "intent_head/dense/bias": rng.randn(3).astype(np.float32),
      "slot_head/dense/kernel": rng.randn(HIDDEN, 3).astype(np.float32),
      "slot_head/dense/bias": rng.randn(3).astype(np.float32),
      "slot_head/crf_transitions": rng.randn(3, 3).astype(np.float32),
      # The factored slot head's (--slot_head=bio_type): OLD has one slot type, x.
      "slot_head/position_dense/kernel": rng.randn(HIDDEN, 3).astype(np.float32),
      "slot_head/type_dense/kernel": rng.randn(HIDDEN, 1).astype(np.float32),
      "slot_head/type_dense/bias": rng.randn(1).astype(np.float32),
  }
  extra = {"intent_head/dense/kernel/adam_m": np.ones((HIDDEN, 3), np.float32),
           "global_step": np.array(7, np.int64),
           "slot_head/dense/bias/ExponentialMovingAverage": np.full(3, 5.0, np.float32)}
  prefix = os.path.join(run_dir, "best_checkpoint", "step-7", "model.ckpt-7")
  warm_start.save_checkpoint({**values, **extra}, prefix)
  with open(os.path.join(run_dir, "best_checkpoint", "best_metrics.json"), "w") as f:
    json.dump({"checkpoint": prefix, "step": 7, "value": 0.5}, f)
  OLD.save(os.path.join(run_dir, "label_maps.json"))
  return run_dir, prefix, values


@pytest.fixture(scope="module")
def remapped(source_run, tmp_path_factory):
  run_dir, prefix, _ = source_run
  output_dir = str(tmp_path_factory.mktemp("new_run"))
  assert warm_start.best_checkpoint_of_run(run_dir) == prefix
  record = warm_start.write_remapped_checkpoint(run_dir, prefix, NEW, output_dir,
                                                initializer_range=0.02, seed=3)
  reader = tf.train.load_checkpoint(record["checkpoint"])
  tensors = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
  return record, tensors, output_dir


def test_encoder_loads_and_the_optimizer_does_not(source_run, remapped):
  _, _, old = source_run
  _, new, _ = remapped
  assert set(new) == set(old)  # no Adam slot, global step or moving average
  for name in ("bert/embeddings/word_embeddings", "bert/encoder/layer_0/output/dense/kernel"):
    np.testing.assert_array_equal(new[name], old[name])


def test_heads_load_by_label_name(source_run, remapped):
  _, _, old = source_run
  _, new, _ = remapped
  kernel, bias = new["intent_head/dense/kernel"], new["intent_head/dense/bias"]
  assert kernel.shape == (HIDDEN, 3) and bias.shape == (3,)
  np.testing.assert_array_equal(kernel[:, :2], old["intent_head/dense/kernel"][:, 1:])  # B, C
  np.testing.assert_array_equal(bias[:2], old["intent_head/dense/bias"][1:])
  fresh = kernel[:, 2]  # D: new, drawn like the initializer; A's column is gone
  assert np.all(np.abs(fresh) <= 0.04) and fresh.std() > 0.002
  assert bias[2] == 0.0
  slot_kernel = new["slot_head/dense/kernel"]
  np.testing.assert_array_equal(slot_kernel[:, :2], old["slot_head/dense/kernel"][:, :2])  # O, B-x
  assert np.all(np.abs(slot_kernel[:, 2]) <= 0.04)  # B-y fresh, I-x dropped
  # The moving average, not the raw bias, is what the earlier run evaluated.
  np.testing.assert_array_equal(new["slot_head/dense/bias"], [5.0, 5.0, 0.0])
  transitions = new["slot_head/crf_transitions"]
  np.testing.assert_array_equal(transitions[:2, :2], old["slot_head/crf_transitions"][:2, :2])
  np.testing.assert_array_equal(transitions[2, :], 0.0)
  np.testing.assert_array_equal(transitions[:, 2], 0.0)


def test_the_record_says_what_was_loaded(source_run, remapped):
  run_dir, prefix, _ = source_run
  record, _, output_dir = remapped
  assert record["intents"] == {"copied": ["B", "C"], "new": ["D"], "dropped": ["A"]}
  assert record["slot_tags"] == {"copied": ["O", "B-x"], "new": ["B-y"], "dropped": ["I-x"]}
  assert record["source_run_dir"] == run_dir and record["source_checkpoint"] == prefix
  assert record["moving_averages"] is True
  with open(os.path.join(output_dir, "warm_start", "warm_start.json")) as f:
    assert json.load(f) == record


def test_the_factored_slot_head_loads_its_types_by_name(source_run, remapped):
  _, _, old = source_run
  _, new, _ = remapped
  assert NEW.slot_types == ("x", "y")
  np.testing.assert_array_equal(new["slot_head/position_dense/kernel"],
                                old["slot_head/position_dense/kernel"])  # O, B, I: as it is
  type_kernel, type_bias = new["slot_head/type_dense/kernel"], new["slot_head/type_dense/bias"]
  assert type_kernel.shape == (HIDDEN, 2)
  np.testing.assert_array_equal(type_kernel[:, 0], old["slot_head/type_dense/kernel"][:, 0])
  assert np.all(np.abs(type_kernel[:, 1]) <= 0.04) and type_bias[1] == 0.0  # y: fresh
  assert type_bias[0] == old["slot_head/type_dense/bias"][0]
