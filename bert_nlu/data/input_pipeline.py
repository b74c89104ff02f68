"""tf.data input_fn over the TFRecord cache: parse once (in-memory cache), shuffle, repeat,
length-bucketed dynamic padding.

Each element is a dict of the records' features (`tfrecords.FeatureSpec`) plus input_mask; for
NLU records (the default spec), int32 tensors:
  input_ids, input_mask, segment_ids, first_piece_mask, slot_ids: [batch_size, seq_length]
  intent_id, example_index: [batch_size]
and for GLUE records (`SENTENCE_PAIR_FEATURE_SPEC`) input_ids, input_mask, segment_ids
[batch_size, seq_length], label_id, example_index [batch_size] int32, score [batch_size] float32,
and NLU's intent_ids: [batch_size, max intents of an example in the batch], the atomic intent ids,
padded with -1 (`FeatureSpec.int_lists`),
where seq_length is the longest example in the batch (dynamic padding) or max_seq_length
(`pad_to_max_length=True`). Padding uses id 0 everywhere (-1 in intent_ids) and input_mask 0.
"""

from typing import Callable, Optional

from bert_nlu import checkpoints
from bert_nlu.compat import tf
from bert_nlu.data.tfrecords import NLU_FEATURE_SPEC, FeatureSpec

_SHUFFLE_BUFFER = 20000


def parse_record(serialized: tf.Tensor, feature_spec: FeatureSpec = NLU_FEATURE_SPEC) -> dict:
  """One serialized tf.train.Example -> dict of int32 tensors (sequences and int lists are
  [length]) and float32 scalars (`feature_spec.float_scalars`)."""
  spec = {name: tf.io.VarLenFeature(tf.int64)
          for name in feature_spec.sequence + feature_spec.int_lists}
  spec.update({name: tf.io.FixedLenFeature([], tf.int64) for name in feature_spec.int_scalars})
  spec.update({name: tf.io.FixedLenFeature([], tf.float32)
               for name in feature_spec.float_scalars})
  parsed = tf.io.parse_single_example(serialized, spec)
  features = {}
  for name in feature_spec.sequence + feature_spec.int_lists:
    features[name] = tf.cast(tf.sparse.to_dense(parsed[name]), tf.int32)
  for name in feature_spec.int_scalars:
    features[name] = tf.cast(parsed[name], tf.int32)
  for name in feature_spec.float_scalars:
    features[name] = parsed[name]
  features["input_mask"] = tf.ones_like(features["input_ids"])
  return features


def default_bucket_boundaries(max_seq_length: int, width: int = 8) -> list:
  """Length-bucket upper bounds (exclusive): 9, 17, 25, ... below max_seq_length + 1."""
  return list(range(width + 1, max_seq_length + 1, width))


def _padded_shapes(pad_to_max_length: bool, max_seq_length: int,
                   feature_spec: FeatureSpec) -> dict:
  length = max_seq_length if pad_to_max_length else None
  shapes = {name: [length] for name in feature_spec.sequence + ("input_mask",)}
  shapes.update({name: [] for name in feature_spec.int_scalars + feature_spec.float_scalars})
  shapes.update({name: [None] for name in feature_spec.int_lists})
  return shapes


def _padding_values(padded_shapes: dict, feature_spec: FeatureSpec) -> dict:
  """0 for int features, 0.0 for float ones, -1 for int lists (where 0 is a valid id)."""
  values = {name: tf.constant(0, tf.int32) for name in padded_shapes}
  values.update({name: tf.constant(0.0, tf.float32) for name in feature_spec.float_scalars})
  values.update({name: tf.constant(-1, tf.int32) for name in feature_spec.int_lists})
  return values


def make_input_fn(tfrecord_path: str,
                  is_training: bool,
                  batch_size: int,
                  max_seq_length: int,
                  bucket_by_length: bool = True,
                  pad_to_max_length: bool = False,
                  seed: Optional[int] = None,
                  bucket_width: int = 8,
                  resume_model_dir: Optional[str] = None,
                  batches_per_step: int = 1,
                  feature_spec: FeatureSpec = NLU_FEATURE_SPEC) -> Callable:
  """Builds an Estimator input_fn.

  Args:
    tfrecord_path: a cache file written by `tfrecords.build_or_load`.
    is_training: shuffle (seeded), repeat forever and (if bucket_by_length) batch by length.
    batch_size: examples per batch (the last eval batch may be smaller).
    max_seq_length: the cache's max_seq_length.
    bucket_by_length: training batches hold examples of similar length.
    pad_to_max_length: pad every batch to max_seq_length (fixed shapes; slower).
    seed: shuffle seed.
    bucket_width: length buckets are this many pieces wide (`default_bucket_boundaries`).
    resume_model_dir: for training: when input_fn is called, skip as many batches as the
      latest checkpoint there has steps, so a resumed run sees the same batch sequence as an
      uninterrupted one (the seeded pipeline is deterministic).
    batches_per_step: batches one global step consumes (the replicas of a tf.distribute
      strategy each take one: batch_size is then per replica); the resume skip is steps x this.
      Under a multi-worker strategy the Estimator passes `input_context`, and each worker reads
      its own share of the batches.
    feature_spec: what the records hold (the cache's `FeatureEncoding.spec`).

  Returns:
    input_fn(params) -> tf.data.Dataset of feature dicts (labels are inside the features).
  """
  padded_shapes = _padded_shapes(pad_to_max_length, max_seq_length, feature_spec)

  def input_fn(params=None, input_context=None):  # pylint: disable=unused-argument
    dataset = tf.data.TFRecordDataset(tfrecord_path)
    dataset = dataset.map(lambda record: parse_record(record, feature_spec),
                          num_parallel_calls=tf.data.AUTOTUNE)
    if is_training:
      # Parsed once, kept in memory: later epochs only shuffle and batch. Shuffling parsed
      # records gives the order shuffling the serialized ones did (the permutation depends on
      # the seed and the count only), so a run's batch sequence is unchanged.
      dataset = dataset.cache()
      dataset = dataset.shuffle(_SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
      dataset = dataset.repeat()
    if is_training and bucket_by_length and not pad_to_max_length:
      boundaries = default_bucket_boundaries(max_seq_length, bucket_width)
      dataset = dataset.bucket_by_sequence_length(
          element_length_func=lambda features: tf.shape(features["input_ids"])[0],
          bucket_boundaries=boundaries,
          bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
          padded_shapes=padded_shapes, padding_values=_padding_values(padded_shapes, feature_spec))
    else:
      dataset = dataset.padded_batch(batch_size, padded_shapes=padded_shapes,
                                     padding_values=_padding_values(padded_shapes, feature_spec))
    if is_training and resume_model_dir:
      completed_steps = checkpoints.latest_step(resume_model_dir)
      if completed_steps:
        dataset = dataset.skip(completed_steps * batches_per_step)
    if is_training and input_context is not None and input_context.num_input_pipelines > 1:
      # Several workers (tf.distribute multi-worker): worker w takes batches w, w + n, ... of the
      # one seeded batch stream, so workers never train on the same batch.
      dataset = dataset.shard(input_context.num_input_pipelines,
                              input_context.input_pipeline_id)
    return dataset.prefetch(tf.data.AUTOTUNE)

  return input_fn
