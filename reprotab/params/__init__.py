"""params.yaml, typed: the sections, the names each strategy key accepts, the loader, and the check
the validate stage runs."""
