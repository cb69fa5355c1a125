"""The scoring sidecar: a gRPC service gating contributions.

Not built yet (issue 6); its API will be defined in ``proto/qf/scorer/v1``.
"""
