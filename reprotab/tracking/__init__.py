"""Comparing and mirroring runs: `compare`, pull-request review, and the MLflow and Comet mirrors."""
