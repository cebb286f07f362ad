"""Serving ALBERT with TensorFlow Serving: SavedModel export (tokenizer in the graph,
warmup records), deployment files (deploy/), and gRPC/REST clients. See README.md."""
