"""Benchmarks: scripts that print tables (`make bench`), never timed assertions in tests."""
