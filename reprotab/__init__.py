"""reprotab: retrain tabular models reproducibly.

The library behind the DVC pipeline (`stages/` holds only the thin stage shells that dvc.yaml
runs) and the `reprotab` command (`reprotab/cli.py`). See the README's module map.
"""

__version__ = "0.2.0"
