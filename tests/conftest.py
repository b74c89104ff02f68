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


def real_data_dir():
  """The shared real corpora: $BERT_NLU_DATA_DIR or <repo>/../shared/data (may not exist)."""
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  return os.environ.get("BERT_NLU_DATA_DIR") or os.path.join(repo, "..", "shared", "data")
