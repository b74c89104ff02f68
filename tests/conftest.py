"""Shared fixtures: a tiny random BERT checkpoint and a tiny, trivially learnable NLU corpus."""

import os

import pytest

from bert_nlu.testing import corpus_vocabulary, make_corpus, make_tiny_bert  # noqa: F401


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
  return make_tiny_bert(str(tmp_path_factory.mktemp("tiny_bert")), corpus_vocabulary())


@pytest.fixture(scope="session")
def tiny_corpus_dir(tmp_path_factory):
  return make_corpus(str(tmp_path_factory.mktemp("tiny_corpus")))


@pytest.fixture
def poison_gradients(monkeypatch):
  """`poison_gradients(steps)`: from then on, graphs built by NluTask.build_losses keep the loss's
  value but multiply its gradient by 1e38 at the given global steps (read before the step's
  increment, so poisoning step s makes the update s -> s + 1 overflow): an overflow once
  multiplied by an fp16 loss scale, and a non-finite global gradient norm in float32."""
  from bert_nlu.compat import tf  # pylint: disable=g-import-not-at-top
  from bert_nlu.tasks.nlu import NluTask  # pylint: disable=g-import-not-at-top

  def poison(steps):
    real_build_losses = NluTask.build_losses

    def poisoned_build_losses(self, logits, features):
      loss, parts = real_build_losses(self, logits, features)
      step = tf.train.get_or_create_global_step()
      hit = tf.reduce_any(tf.equal(step, tf.constant(list(steps), tf.int64)))
      factor = tf.where(hit, tf.constant(1e38), tf.constant(1.0))
      return tf.stop_gradient(loss) + (loss - tf.stop_gradient(loss)) * factor, parts

    monkeypatch.setattr(NluTask, "build_losses", poisoned_build_losses)

  return poison


def real_data_dir():
  """The shared real corpora: $BERT_NLU_DATA_DIR or <repo>/../shared/data (may not exist)."""
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  return os.environ.get("BERT_NLU_DATA_DIR") or os.path.join(repo, "..", "shared", "data")


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory, tiny_bert_dir, tiny_corpus_dir):
  """A finished tiny sweep (2 learning rates x 1 instance, trained 2 at a time) shared by the
  sweep, collector and HParams tests: (sweep file, runs root, planned runs)."""
  from bert_nlu import sweep, sweep_spec  # pylint: disable=g-import-not-at-top
  from bert_nlu.testing import write_tiny_sweep_file  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("tiny_sweep")
  sweep_file = write_tiny_sweep_file(str(root / "tiny.sweep"), "tiny", tiny_bert_dir,
                                     tiny_corpus_dir)
  runs_root = str(root / "runs")
  spec = sweep_spec.read_sweep_file(sweep_file)
  planned = sweep.plan_sweep(spec, runs_root)
  sweep.write_index(spec, planned, runs_root)
  sweep.run_all(planned, parallel=2, threads=sweep.thread_counts(2, 2), emit=lambda line: None)
  sweep.write_index(spec, planned, runs_root)
  return sweep_file, runs_root, planned
