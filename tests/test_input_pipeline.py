"""input_fn: dynamic padding by length buckets, fixed padding, eval order, seeded shuffling."""

import itertools

import numpy as np
import pytest

from bert_nlu import checkpoints
from bert_nlu.compat import make_tokenizer
from bert_nlu.data import input_pipeline, readers, tfrecords
from bert_nlu.data.features import NluFeature
from bert_nlu.data.labels import LabelMaps
from conftest import corpus_vocabulary, make_corpus


def _features(lengths):
  return [NluFeature(example_index=i, input_ids=tuple(range(1, n + 1)), segment_ids=(0,) * n,
                     first_piece_mask=(0,) + (1,) * (n - 2) + (0,), slot_ids=(0,) * n,
                     intent_id=i % 3, intent_ids=tuple(range(i % 3, 3)), num_words=n - 2,
                     num_words_kept=n - 2)
          for i, n in enumerate(lengths)]


@pytest.fixture()
def record_path(tmp_path):
  rng = np.random.RandomState(0)
  lengths = list(rng.randint(3, 40, size=200))
  path = str(tmp_path / "train.tfrecord")
  tfrecords.write_tfrecord(_features(lengths), path)
  return path, lengths


def _batches(input_fn, n):
  return [{k: v.numpy() for k, v in b.items()} for b in itertools.islice(input_fn(), n)]


def test_eval_input_sees_every_example_once_in_order(record_path):
  path, lengths = record_path
  batches = _batches(input_pipeline.make_input_fn(path, False, 64, 40), 100)
  indices = np.concatenate([b["example_index"] for b in batches])
  assert list(indices) == list(range(200))
  for batch in batches:  # dynamic padding: padded to the batch's own longest example
    true_lengths = batch["input_mask"].sum(axis=1)
    assert batch["input_ids"].shape[1] == true_lengths.max()
    assert list(true_lengths) == [lengths[i] for i in batch["example_index"]]


def test_intent_sets_are_padded_with_minus_one(record_path):
  path, _ = record_path
  for is_training in (False, True):
    for batch in _batches(input_pipeline.make_input_fn(path, is_training, 16, 40, seed=1), 3):
      for row, index in enumerate(batch["example_index"]):
        expected = list(range(index % 3, 3))
        padded = expected + [-1] * (batch["intent_ids"].shape[1] - len(expected))
        assert list(batch["intent_ids"][row]) == padded


def test_training_buckets_group_similar_lengths(record_path):
  path, _ = record_path
  input_fn = input_pipeline.make_input_fn(path, True, 16, 40, bucket_by_length=True, seed=1)
  batches = _batches(input_fn, 30)
  spreads = []
  for batch in batches:
    true_lengths = batch["input_mask"].sum(axis=1)
    assert batch["input_ids"].shape == (16, true_lengths.max())
    spreads.append(true_lengths.max() - true_lengths.min())
  assert max(spreads) < 8  # one bucket is 8 pieces wide
  padded = sum(b["input_ids"].size for b in batches)
  real = sum(b["input_mask"].sum() for b in batches)
  assert real / padded > 0.8


def test_one_piece_wide_buckets_batch_examples_of_one_length(record_path):
  path, _ = record_path
  boundaries = input_pipeline.default_bucket_boundaries(40, width=1)
  assert boundaries[:3] == [2, 3, 4] and boundaries[-1] == 40
  input_fn = input_pipeline.make_input_fn(path, True, 16, 40, seed=1, bucket_width=1)
  batches = _batches(input_fn, 30)
  for batch in batches:
    assert np.all(batch["input_mask"] == 1)  # no padding at all
  assert len({b["input_ids"].shape[1] for b in batches}) > 1


def test_a_bucket_as_wide_as_max_seq_length_batches_at_random_with_dynamic_padding(record_path):
  path, _ = record_path
  assert input_pipeline.default_bucket_boundaries(40, width=40) == []
  input_fn = input_pipeline.make_input_fn(path, True, 16, 40, seed=1, bucket_width=40)
  batches = _batches(input_fn, 30)
  spreads = []
  for batch in batches:
    true_lengths = batch["input_mask"].sum(axis=1)
    assert batch["input_ids"].shape == (16, true_lengths.max())  # padded to its own longest
    spreads.append(true_lengths.max() - true_lengths.min())
  assert max(spreads) >= 8  # lengths of several 8-wide buckets in one batch
  # The first batch is the shuffled stream's first 16 examples (no bucket to fill first).
  unbucketed = _batches(input_pipeline.make_input_fn(path, True, 16, 40, seed=1,
                                                     bucket_by_length=False), 1)
  assert list(batches[0]["example_index"]) == list(unbucketed[0]["example_index"])


def test_fixed_padding_pads_to_max_seq_length(record_path):
  path, _ = record_path
  input_fn = input_pipeline.make_input_fn(path, True, 16, 40, bucket_by_length=False,
                                          pad_to_max_length=True, seed=1)
  for batch in _batches(input_fn, 5):
    assert batch["input_ids"].shape == (16, 40)
    # padding is id 0 and mask 0
    assert np.all(batch["input_ids"][batch["input_mask"] == 0] == 0)


def test_seeded_shuffle_is_repeatable_and_differs_by_seed(record_path):
  path, _ = record_path
  def order(seed):
    batches = _batches(input_pipeline.make_input_fn(path, True, 16, 40, seed=seed), 6)
    return [int(i) for b in batches for i in b["example_index"]]
  assert order(3) == order(3)
  assert order(3) != order(4)


def test_training_input_repeats_beyond_one_epoch(record_path):
  path, _ = record_path
  batches = _batches(input_pipeline.make_input_fn(path, True, 32, 40, seed=0), 20)
  assert len(batches) == 20  # 640 examples drawn from 200


def test_default_bucket_boundaries():
  assert input_pipeline.default_bucket_boundaries(32) == [9, 17, 25]


def test_resumed_training_input_continues_the_same_batch_sequence(record_path, tmp_path):
  path, _ = record_path
  model_dir = tmp_path / "model"
  model_dir.mkdir()
  fresh = _batches(input_pipeline.make_input_fn(path, True, 16, 40, seed=5,
                                                resume_model_dir=str(model_dir)), 12)
  # A checkpoint at step 7: the resumed pipeline starts with the 8th batch.
  (model_dir / "model.ckpt-7.index").write_bytes(b"")
  (model_dir / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-7"\n')
  assert checkpoints.latest_step(str(model_dir)) == 7
  resumed = _batches(input_pipeline.make_input_fn(path, True, 16, 40, seed=5,
                                                  resume_model_dir=str(model_dir)), 5)
  for a, b in zip(fresh[7:12], resumed):
    assert list(a["example_index"]) == list(b["example_index"])


def test_parsed_record_cache_keeps_the_shuffled_order_of_serialized_records(record_path):
  # Reference: the order before the in-memory cache, shuffling serialized records then parsing.
  path, _ = record_path
  import tensorflow as tf2  # pylint: disable=g-import-not-at-top  (eager tf.data)
  reference = (tf2.data.TFRecordDataset(path)
               .shuffle(input_pipeline._SHUFFLE_BUFFER, seed=5, reshuffle_each_iteration=True)
               .repeat().map(input_pipeline.parse_record))
  expected = [int(f["example_index"]) for f in itertools.islice(reference, 600)]  # 3 epochs
  input_fn = input_pipeline.make_input_fn(path, True, 1, 40, bucket_by_length=False, seed=5)
  got = [int(b["example_index"][0]) for b in itertools.islice(input_fn(), 600)]
  assert got == expected
