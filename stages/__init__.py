"""Stages of the retraining pipeline (validate → profile → prepare → tune → train → evaluate → gate),
one thin shell per stage over the reprotab library. Each stage runs as `python -m stages.<name>`."""

import gc
import sys

# A stage's start-up imports scikit-learn, pandas and a model library: hundreds of thousands of
# objects that the cyclic garbage collector would walk again and again while they load (0.1-0.5 s
# of each stage). While `python -m` locates the stage, sys.argv[0] is "-m", so this pauses the
# collector for command-line runs only; `reprotab.runner.stage_main` resumes it before the work.
if sys.argv[:1] == ["-m"]:
    gc.disable()
