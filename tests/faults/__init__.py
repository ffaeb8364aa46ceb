"""Fault-injection suite: kills, torn journals, retries, the breaker, learning from failures."""
