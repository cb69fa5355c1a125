"""Generated gRPC API of the scoring sidecar; see scripts/gen_proto.py."""
