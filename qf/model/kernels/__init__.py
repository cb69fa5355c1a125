"""Numba kernels of the scoring hot path: they walk the flat arrays of :mod:`qf.model.arrays`."""
