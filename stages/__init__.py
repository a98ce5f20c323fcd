"""Stages of the retraining pipeline (prepare → featurize → tune → train → evaluate) and the
small library modules they share. Each stage runs as `python -m stages.<name>`."""
