"""Labels for rows that had none: the active-learning queue and the import of labels that come
back."""
