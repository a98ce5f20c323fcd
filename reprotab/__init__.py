"""reprotab: retrain tabular models reproducibly.

The library behind the DVC pipeline (`stages/` holds only the thin stage shells that dvc.yaml
runs) and the `reprotab` command (`reprotab/cli.py`). See docs/architecture.md for the module map.

The version is typed once, in pyproject.toml; `reprotab.__version__` reads it from the installed
package's metadata when asked, so importing the package does not pay for the look-up.
"""

import os
from typing import TYPE_CHECKING

# OpenMP threads (LightGBM, XGBoost, scikit-learn) spin while they wait for work by default. With
# any other busy process on the cores (a second test worker, another stage, a benchmark) the
# spinning threads starve each other and a small LightGBM fit runs 10-100x slower. Passive waiting
# costs little on idle cores. Each OpenMP runtime reads this once, when it loads, so it is set here,
# before any model library is imported; a value set by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__: str  # pyproject.toml's version, looked up on first use (below)

if not TYPE_CHECKING:  # hidden from mypy, which would otherwise type every unknown attribute as str

    def __getattr__(name: str) -> str:
        """`__version__`: pyproject.toml's version, from the installed metadata (`pip install -e .`)."""
        if name != "__version__":
            raise AttributeError(f"module 'reprotab' has no attribute {name!r}")
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("reprotab")
        except PackageNotFoundError:  # run from a copied source tree (the service image) without installing it
            raise AttributeError("reprotab is not installed, so its version is unknown (pip install -e .)") from None
