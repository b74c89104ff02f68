"""TFRecord cache: written once, reused, rebuilt on any change, never trusted when half-written."""

import os

import numpy as np
import pytest

from bert_nlu import testing, train
from bert_nlu.compat import make_tokenizer, tf
from bert_nlu.data import input_pipeline, readers, tfrecords
from bert_nlu.data.labels import LabelMaps
from conftest import corpus_vocabulary, make_corpus


@pytest.fixture()
def setup(tmp_path):
  corpus = make_corpus(str(tmp_path / "corpus"), sizes=(("train", 40), ("dev", 10)))
  vocab_file = tmp_path / "vocab.txt"
  vocab_file.write_text("\n".join(corpus_vocabulary()) + "\n")
  splits = readers.read_seq_corpus(corpus, splits=("train", "dev"))
  train = splits["train"]
  label_maps = LabelMaps.from_labels(train.intents(), (e.slot_tags for e in train.examples))
  tokenizer = make_tokenizer(str(vocab_file), True)
  return dict(corpus=corpus, vocab_file=str(vocab_file), splits=splits, label_maps=label_maps,
              tokenizer=tokenizer, cache_dir=str(tmp_path / "cache"))


def _build(s, split="train", max_seq_length=16, splits=None):
  return tfrecords.build_or_load((splits or s["splits"])[split], s["tokenizer"], s["label_maps"],
                                 s["vocab_file"], True, max_seq_length, s["cache_dir"])


def _read_all(path):
  dataset = tf.data.TFRecordDataset(path).map(input_pipeline.parse_record)
  return [{k: v.numpy() for k, v in record.items()} for record in dataset]


def test_cache_is_written_once_and_reused(setup):
  first = _build(setup)
  assert first.rebuilt and first.num_examples == 40
  mtime = os.path.getmtime(first.tfrecord_path)
  second = _build(setup)
  assert not second.rebuilt
  assert second.tfrecord_path == first.tfrecord_path
  assert os.path.getmtime(first.tfrecord_path) == mtime
  records = _read_all(first.tfrecord_path)
  assert [r["example_index"] for r in records] == list(range(40))
  assert [len(r["input_ids"]) for r in records] == list(first.lengths)


def test_any_input_change_rebuilds(setup, tmp_path):
  base = _build(setup)
  # max_seq_length
  assert _build(setup, max_seq_length=12).rebuilt
  # data content: change one label in the corpus on disk
  label_path = os.path.join(setup["corpus"], "train", "label")
  lines = open(label_path).read().splitlines()
  lines[0] = "GetWeather" if lines[0] != "GetWeather" else "PlayMusic"
  open(label_path, "w").write("\n".join(lines) + "\n")
  changed = readers.read_seq_corpus(setup["corpus"], splits=("train",))
  rebuilt = _build(setup, splits=changed)
  assert rebuilt.rebuilt and rebuilt.tfrecord_path != base.tfrecord_path
  # vocab content
  with open(setup["vocab_file"], "a") as f:
    f.write("extra\n")
  assert _build(setup, splits=changed).rebuilt


def test_stale_entries_are_removed(setup):
  first = _build(setup, max_seq_length=16)
  _build(setup, max_seq_length=12)
  assert not os.path.exists(first.tfrecord_path)
  assert len([n for n in os.listdir(setup["cache_dir"]) if n.startswith("train.")]) == 2


def test_a_shared_cache_keeps_the_entries_of_other_keys(setup):
  """A sweep's runs share one cache: building one run's entry must not delete another run's."""
  other_run = tfrecords.build_or_load(setup["splits"]["dev"], setup["tokenizer"],
                                      setup["label_maps"], setup["vocab_file"], True, 16,
                                      setup["cache_dir"], remove_stale=False)
  this_run = tfrecords.build_or_load(setup["splits"]["dev"], setup["tokenizer"],
                                     setup["label_maps"], setup["vocab_file"], True, 12,
                                     setup["cache_dir"], remove_stale=False)
  assert this_run.rebuilt and this_run.tfrecord_path != other_run.tfrecord_path
  assert len(_read_all(other_run.tfrecord_path)) == 10  # still there, still whole


def test_crash_mid_write_leaves_nothing_trusted(setup, monkeypatch):
  real_example = tfrecords.feature_to_tf_example
  calls = {"n": 0}

  def exploding(feature, *spec):
    calls["n"] += 1
    if calls["n"] == 20:
      raise KeyboardInterrupt("killed mid-write")
    return real_example(feature, *spec)

  monkeypatch.setattr(tfrecords, "feature_to_tf_example", exploding)
  with pytest.raises(KeyboardInterrupt):
    _build(setup)
  assert os.listdir(setup["cache_dir"]) == []  # no half file under any name
  monkeypatch.setattr(tfrecords, "feature_to_tf_example", real_example)
  rebuilt = _build(setup)
  assert rebuilt.rebuilt and len(_read_all(rebuilt.tfrecord_path)) == 40


def test_records_without_matching_metadata_are_not_trusted(setup):
  entry = _build(setup)
  meta_path = entry.tfrecord_path.replace(".tfrecord", ".meta.json")
  os.remove(meta_path)  # e.g. killed between the two renames
  assert _build(setup).rebuilt
  with open(meta_path, "w") as f:
    f.write("{ truncated")
  assert _build(setup).rebuilt


def test_length_percentiles():
  assert tfrecords.length_percentiles([3, 5, 7, 9], (50, 100)) == [5, 9]
  assert tfrecords.length_percentiles([], (50,)) == [0]


def test_flipped_bytes_in_a_cached_file_trigger_a_rebuild(setup):
  entry = _build(setup)
  data = bytearray(open(entry.tfrecord_path, "rb").read())
  data[len(data) // 2] ^= 0xFF
  open(entry.tfrecord_path, "wb").write(bytes(data))
  assert tfrecords.count_valid_records(entry.tfrecord_path) == -1
  rebuilt = _build(setup)
  assert rebuilt.rebuilt
  assert tfrecords.count_valid_records(rebuilt.tfrecord_path) == 40


def test_truncated_cached_file_triggers_a_rebuild(setup):
  entry = _build(setup)
  size = os.path.getsize(entry.tfrecord_path)
  with open(entry.tfrecord_path, "r+b") as f:
    f.truncate(size - 7)
  assert _build(setup).rebuilt


def test_limited_and_resampled_training_data_get_their_own_cache_entries(setup):
  from bert_nlu.data import limit  # pylint: disable=g-import-not-at-top
  train = setup["splits"]["train"]
  intent = train.examples[0].intent
  variants = [train, limit.limit_intents(train, [(intent, 2)], seed=1),
              limit.limit_intents(train, [(intent, 2)], seed=2),
              limit.resample_limited(train, [(intent, 2)], seed=1)]
  keys = {tfrecords.cache_key(split, setup["vocab_file"], True, 16, setup["label_maps"])
          for split in variants}
  assert len(keys) == len(variants)
  resampled = _build(setup, splits={"train": variants[3]})
  assert resampled.rebuilt and resampled.num_examples == len(train)


def test_runs_sharing_a_cache_directory_keep_each_others_records(tiny_bert_dir, tiny_corpus_dir,
                                                                 tmp_path):
  """The trainer tidies only its own cache: two runs given one --cache_dir (as a sweep gives its
  runs) with different records (max_seq_length) both find theirs; a run's private cache
  (<output_dir>/data_cache) still drops its stale entries."""
  shared = str(tmp_path / "shared_cache")

  def prepare(name, max_seq_length, cache_dir):
    config = testing.tiny_run_config(tiny_bert_dir, tiny_corpus_dir, str(tmp_path / name),
                                     max_seq_length=max_seq_length,
                                     data_fields=dict(cache_dir=cache_dir))
    return train.prepare_data(config, ["dev"]).caches["dev"].tfrecord_path

  first, second = prepare("a", 16, shared), prepare("b", 24, shared)
  assert first != second and os.path.exists(first) and os.path.exists(second)
  private_first = prepare("c", 16, "")
  private_second = prepare("c", 24, "")
  assert os.path.exists(private_second) and not os.path.exists(private_first)
