"""Benchmarks of surrogate_al (run as modules, e.g. ``python -m benchmarks.surrogate_speed``)."""
