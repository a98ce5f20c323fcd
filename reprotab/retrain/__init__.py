"""The monthly retraining loop: the month as a transaction, its steps, its journal and rollback,
the batch set, and its summary."""
