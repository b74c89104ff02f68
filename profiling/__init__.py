"""Profiling: step-profile capture from inside the Estimator, a tfprof reader, a BERT summary.

  capture  `build_profile_hooks`: the training hook that writes profile_N (tfprof) dumps and
           timeline-N.json chrome traces of chosen global steps (called by bert_nlu.model).
  tfprof   `python -m profiling.tfprof`: the old C++ tfprof/profiler command line in Python.
  summary  `python -m profiling.summary`: share of op time per BERT component (table, PNG, JSON).
"""
