"""Benchmarks for the model registry: a registry generator and a runner (see README.md)."""
