"""bench/adam_epsilon.py: where Adam's epsilon matters, from second moments and a checkpoint."""

import os
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))

import adam_epsilon  # noqa: E402  pylint: disable=g-import-not-at-top

from bert_nlu.compat import tf  # noqa: E402  pylint: disable=g-import-not-at-top


def test_effective_epsilon_is_epsilon_over_the_square_root_of_the_correction():
  assert adam_epsilon.effective_epsilon(1e-6, 1) == pytest.approx(1e-6 / np.sqrt(0.001))
  assert adam_epsilon.effective_epsilon(1e-6, 100_000) == pytest.approx(1e-6, rel=1e-6)


def test_shares_count_weights_whose_sqrt_v_hat_is_below_ten_effective_epsilons():
  final_update = 1000
  correction = 1.0 - 0.999 ** final_update
  # sqrt(v_hat) of the four updated weights: 1e-7, 1e-5, 1e-4, 1e-2; one weight never updated.
  sqrt_v_hat = np.array([1e-7, 1e-5, 1e-4, 1e-2])
  moments = np.concatenate([sqrt_v_hat ** 2 * correction, [0.0]])
  report = adam_epsilon.epsilon_shares(moments, final_update, [1e-6], [1, final_update])
  assert report["weights"] == 5 and report["never_updated"] == 1
  first, last = report["shares"]
  # update 1: effective epsilon 3.16e-5, threshold 3.16e-4: three of four weights.
  assert first["tensorflow_effective_epsilon"] == pytest.approx(3.162e-5, rel=1e-3)
  assert first["share"] == pytest.approx(0.75)
  # update 1000: effective epsilon ~1.26e-6, threshold 1.26e-5: two of four.
  assert last["share"] == pytest.approx(0.5)


def test_reads_the_second_moments_of_a_checkpoint_without_the_word_embeddings(tmp_path):
  graph = tf.Graph()
  with graph.as_default():
    tf.Variable(np.full([3], 4e-8, np.float32), name="bert/encoder/dense/kernel/adam_v")
    tf.Variable(np.ones([5], np.float32), name="bert/embeddings/word_embeddings/adam_v")
    tf.Variable(np.ones([3], np.float32), name="bert/encoder/dense/kernel/adam_m")
    step = tf.Variable(np.int64(7), name="global_step")
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      tf.train.Saver().save(session, str(tmp_path / "model.ckpt"), global_step=step)
  moments, global_step = adam_epsilon.read_second_moments(str(tmp_path))
  assert global_step == 7
  np.testing.assert_allclose(moments, [4e-8] * 3)
