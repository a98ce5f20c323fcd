"""The tune stage's library: search spaces, tuners, studies, the search loop, its report, and the
best params handed to train."""
