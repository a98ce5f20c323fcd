"""Statistics the other packages share: metrics, the one bootstrap engine, and drift tests."""
