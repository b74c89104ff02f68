"""TFRecord cache of features: written once, reused while its inputs are unchanged.

A cache entry is two files in the cache directory:
  <split>.<key>.tfrecord      one tf.train.Example per feature
  <split>.<key>.meta.json     key, record count, length statistics
The key is a SHA-256 over everything the records depend on: the examples (hence the data files'
content and the reader's policies), the vocabulary file's bytes, casing, max_seq_length, the label
maps, the feature encoding and the feature format version. Any change gives a new key and a
rebuild. Both files are written under temporary names and renamed when complete, the metadata
last; an entry counts only when its metadata exists and names the same key and record count. A
crash mid-write therefore leaves at most an orphaned temporary file, never a half file that is
later trusted.

What a record holds is a `FeatureEncoding`: the stored features' names and kinds (`FeatureSpec`,
read back by `input_pipeline.parse_record`), the conversion from examples and what of an example
the key covers. `NLU_ENCODING` stores NLU features (intent + slot tags), `SENTENCE_PAIR_ENCODING`
GLUE features (class id and regression score).
"""

import dataclasses
import glob
import os
from typing import Callable, List, Sequence, Tuple

import numpy as np

from bert_nlu import io_utils
from bert_nlu.compat import tf
from bert_nlu.data import features as features_lib
from bert_nlu.data.examples import Split
from bert_nlu.data.labels import LabelMaps

FEATURE_FORMAT_VERSION = 2



@dataclasses.dataclass(frozen=True)
class FeatureSpec:
  """Names and kinds of the features stored per example.

  Attributes:
    sequence: int lists of one value per word piece ([length]), padded with 0 in a batch.
    int_scalars: one int per example.
    float_scalars: one float per example.
    int_lists: int lists of any length per example, padded with -1 in a batch (e.g. the atomic
      intent ids of a multi-intent utterance).
  """
  sequence: Tuple[str, ...]
  int_scalars: Tuple[str, ...]
  float_scalars: Tuple[str, ...] = ()
  int_lists: Tuple[str, ...] = ()


# [num_intents of the example] atomic intent ids, padded with -1 in a batch.
INTENT_SET_FEATURE = "intent_ids"

NLU_FEATURE_SPEC = FeatureSpec(
    sequence=("input_ids", "segment_ids", "first_piece_mask", "slot_ids"),
    int_scalars=("intent_id", "example_index"),
    int_lists=(INTENT_SET_FEATURE,))
SENTENCE_PAIR_FEATURE_SPEC = FeatureSpec(
    sequence=("input_ids", "segment_ids"),
    int_scalars=("label_id", "example_index"),
    float_scalars=("score",))

# The NLU names (kept for callers that predate FeatureSpec).
SEQUENCE_FEATURES = NLU_FEATURE_SPEC.sequence
SCALAR_FEATURES = NLU_FEATURE_SPEC.int_scalars


@dataclasses.dataclass(frozen=True)
class FeatureEncoding:
  """How one kind of example becomes stored features.

  Attributes:
    name: recorded in the cache key.
    spec: the stored features.
    convert_examples: (examples, tokenizer, label_maps, max_seq_length) -> features, each with
      the spec's names as attributes and `length` / `truncated` properties.
    example_content: example -> JSON-able value of everything its features depend on.
  """
  name: str
  spec: FeatureSpec
  convert_examples: Callable
  example_content: Callable


NLU_ENCODING = FeatureEncoding(
    name="nlu", spec=NLU_FEATURE_SPEC, convert_examples=features_lib.convert_examples,
    example_content=lambda e: [list(e.words), list(e.slot_tags), e.intent])
SENTENCE_PAIR_ENCODING = FeatureEncoding(
    name="sentence_pair", spec=SENTENCE_PAIR_FEATURE_SPEC,
    convert_examples=features_lib.convert_pair_examples,
    example_content=lambda e: [e.text_a, e.text_b, e.label, e.score])


@dataclasses.dataclass(frozen=True)
class CachedSplit:
  """A usable cache entry.

  Attributes:
    name: split name.
    tfrecord_path: the records.
    num_examples: records in the file.
    lengths: [num_examples] word-piece length of each feature (for statistics and bucketing).
    num_truncated: examples that lost words to max_seq_length.
    rebuilt: True if this call wrote the entry, False if it was reused.
  """
  name: str
  tfrecord_path: str
  num_examples: int
  lengths: Sequence[int]
  num_truncated: int
  rebuilt: bool


def cache_key(split: Split, vocab_file: str, do_lower_case: bool, max_seq_length: int,
              label_maps: LabelMaps, encoding: FeatureEncoding = NLU_ENCODING) -> str:
  """SHA-256 (hex) of everything the split's records depend on."""
  examples = [encoding.example_content(e) for e in split.examples]
  return io_utils.fingerprint_json({
      "version": FEATURE_FORMAT_VERSION,
      "encoding": encoding.name,
      "data_files": io_utils.fingerprint_files(split.files),
      "examples": io_utils.fingerprint_json(examples),
      "vocab": io_utils.fingerprint_files([vocab_file]),
      "do_lower_case": do_lower_case,
      "max_seq_length": max_seq_length,
      "label_maps": label_maps.to_json_dict(),
  })


def _int_feature(values) -> tf.train.Feature:
  return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _float_feature(values) -> tf.train.Feature:
  return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def feature_to_tf_example(feature, spec: FeatureSpec = NLU_FEATURE_SPEC) -> tf.train.Example:
  """One feature (its attributes named by `spec`) -> tf.train.Example."""
  fields = {name: _int_feature(getattr(feature, name)) for name in spec.sequence}
  fields.update({name: _int_feature([getattr(feature, name)]) for name in spec.int_scalars})
  fields.update({name: _float_feature([getattr(feature, name)]) for name in spec.float_scalars})
  fields.update({name: _int_feature(getattr(feature, name)) for name in spec.int_lists})
  return tf.train.Example(features=tf.train.Features(feature=fields))


def write_tfrecord(features: Sequence, path: str, spec: FeatureSpec = NLU_FEATURE_SPEC) -> None:
  """Writes `features` to `path` atomically (temporary name, then rename)."""
  with io_utils.atomic_path(path) as tmp_path:
    with tf.io.TFRecordWriter(tmp_path) as writer:
      for index, feature in enumerate(features):
        if index == len(features) // 2:
          io_utils.fault_point("tfrecord_half_written:" + os.path.basename(path))
        writer.write(feature_to_tf_example(feature, spec).SerializeToString())


def _entry_paths(cache_dir: str, split_name: str, key: str):
  stem = os.path.join(cache_dir, f"{split_name}.{key[:20]}")
  return stem + ".tfrecord", stem + ".meta.json"


def count_valid_records(path: str) -> int:
  """Records in a TFRecord file, -1 if any record fails its CRC check or the file is cut short.

  Every record is read and its CRCs checked (TensorFlow's C++ record reader), which catches
  flipped bytes before training would stop on them: tens of milliseconds for SNIPS (iterating a
  tf.data.TFRecordDataset in Python took about a second).
  """
  try:
    return sum(1 for _ in tf.io.tf_record_iterator(path))
  except (tf.errors.DataLossError, tf.errors.OutOfRangeError):
    return -1


def _load_entry(tfrecord_path: str, meta_path: str, key: str, name: str):
  """Returns the CachedSplit if the entry is complete and matches `key`, else None."""
  if not (os.path.exists(tfrecord_path) and os.path.exists(meta_path)):
    return None
  try:
    meta = io_utils.read_json(meta_path)
  except (OSError, ValueError):
    return None
  if meta.get("key") != key or len(meta.get("lengths", [])) != meta.get("num_examples"):
    return None
  if count_valid_records(tfrecord_path) != meta["num_examples"]:
    tf.logging.warning("%s: damaged (bad CRC or wrong record count); rebuilding it", tfrecord_path)
    return None
  return CachedSplit(name=name, tfrecord_path=tfrecord_path, num_examples=meta["num_examples"],
                     lengths=tuple(meta["lengths"]), num_truncated=meta["num_truncated"],
                     rebuilt=False)


def build_or_load(split: Split, tokenizer, label_maps, vocab_file: str, do_lower_case: bool,
                  max_seq_length: int, cache_dir: str,
                  encoding: FeatureEncoding = NLU_ENCODING,
                  remove_stale: bool = True) -> CachedSplit:
  """Returns the split's TFRecord cache entry, building it first if needed.

  Args:
    split: the examples (of the kind `encoding` converts).
    label_maps: the label vocabularies the features' ids refer to (`LabelMaps` for NLU,
      `bert_nlu.data.glue.GlueLabels` for GLUE).
    encoding: what a record holds (NLU or sentence-pair features).
    remove_stale: remove the split's entries of other keys after a successful build. Right for
      a cache one run owns; wrong for a cache runs share (a sweep's), where another key is another
      run's live data, which it may still have to open (e.g. dev at its next evaluation).
  """
  key = cache_key(split, vocab_file, do_lower_case, max_seq_length, label_maps, encoding)
  tfrecord_path, meta_path = _entry_paths(cache_dir, split.name, key)
  cached = _load_entry(tfrecord_path, meta_path, key, split.name)
  if cached is not None:
    return cached
  features = encoding.convert_examples(split.examples, tokenizer, label_maps, max_seq_length)
  write_tfrecord(features, tfrecord_path, encoding.spec)
  lengths = [f.length for f in features]
  num_truncated = sum(f.truncated for f in features)
  io_utils.atomic_write_json(meta_path, {
      "key": key, "split": split.name, "num_examples": len(features),
      "num_truncated": num_truncated, "max_seq_length": max_seq_length,
      "files": list(split.files), "lengths": lengths})
  if remove_stale:
    _remove_stale_entries(cache_dir, split.name, keep=(tfrecord_path, meta_path))
  if num_truncated:
    tf.logging.warning("%s: %d of %d examples truncated to max_seq_length=%d", split.name,
                       num_truncated, len(features), max_seq_length)
  return CachedSplit(name=split.name, tfrecord_path=tfrecord_path, num_examples=len(features),
                     lengths=tuple(lengths), num_truncated=num_truncated, rebuilt=True)


def _remove_stale_entries(cache_dir: str, split_name: str, keep: Sequence[str]) -> None:
  for path in glob.glob(os.path.join(cache_dir, f"{split_name}.*")):
    if path not in keep and not os.path.basename(path).startswith("."):
      os.remove(path)


def length_percentiles(lengths: Sequence[int], percentiles=(50, 90, 95, 99, 100)) -> List[int]:
  """Word-piece length percentiles (nearest-rank, integers)."""
  if not lengths:
    return [0 for _ in percentiles]
  return [int(np.percentile(np.asarray(lengths), p, method="inverted_cdf")) for p in percentiles]
