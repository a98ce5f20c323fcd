"""The evaluate stage's library: scores on validation and test, permutation importance, the
figures, the plot data and the report."""
