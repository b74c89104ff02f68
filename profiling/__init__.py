"""Profiling: step-profile capture from inside the Estimator and a pure-Python profile reader.

Filled by the profiling issue (#6): `profiling.hooks` (capture) and `profiling.tfprof` (reader).
"""
