"""Corpus readers, features, TFRecord cache and input_fn."""
