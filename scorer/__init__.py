"""The scoring sidecar: a gRPC service (``proto/qf/scorer/v1``) gating contributions.

``server`` assembles it, ``service`` maps RPCs to the pure ``engine`` over a
``models`` bundle and a ``feature_store`` snapshot, ``interceptors`` guard every
call, ``audit`` logs decisions and ``client`` is for dApp backends. UI-variant
experiments are served from :mod:`qf.experiments` (shared with the console);
batch scoring (`qf score`) and retention are the application's (``qf_sentinel``). The numba hot path the ``engine``
runs is in :mod:`qf.model.kernels` (shared with training, below the sidecar).
"""
