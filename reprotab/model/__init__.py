"""What the served model is made of: its schema, featurizer, decision threshold and calibrator, the
model file and its card."""
