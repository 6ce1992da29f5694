"""Reproducible benchmark suite: synthetic feed, system under test, references, client swarm."""
