"""`python -m reprotab` is the `reprotab` command."""

import gc

gc.disable()  # no collections while the command's libraries load; cli.main resumes (runner.resume_collection)

from reprotab.cli import main  # noqa: E402

main()
