"""Tables in and out: the embedded demo data, reading and writing, prepare's checks, cleaning and
split, the profile, leak checks, and the one cleaner of rows that arrive after training."""
