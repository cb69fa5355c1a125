"""Numba kernels of the scoring hot path: they read the flat arrays exported by qf.train."""
