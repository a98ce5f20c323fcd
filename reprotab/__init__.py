"""reprotab: retrain tabular models reproducibly.

The library behind the DVC pipeline (`stages/` holds only the thin stage shells that dvc.yaml
runs) and the `reprotab` command (`reprotab/cli.py`). See the README's module map.
"""

import os

# OpenMP threads (LightGBM, XGBoost, scikit-learn) spin while they wait for work by default. With
# any other busy process on the cores (a second test worker, another stage, a benchmark) the
# spinning threads starve each other and a small LightGBM fit runs 10-100x slower. Passive waiting
# costs little on idle cores. Each OpenMP runtime reads this once, when it loads, so it is set here,
# before any model library is imported; a value set by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.2.0"
