"""Round simulators: plan a round in pure Python, then execute it on a chain.

``plan`` holds the data types; ``scenario`` (synthetic rounds with labelled
sybil patterns) and ``gitcoin`` (the real Round 9 replay) build plans;
``execute`` sends a plan to a node as real transactions; ``labels`` stores
the ground truth.
"""
