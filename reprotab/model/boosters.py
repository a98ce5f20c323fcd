"""The fitted estimator of each model family in its own format, checked before the library sees it.

One `Booster` class per family name, an allow-list kept here: the bundle names the family, and
only these loaders can run. Each stores its estimator in the library's native format or as plain
arrays, never a pickle: LightGBM as its model text, XGBoost and CatBoost as their JSON models, the
random forest as node arrays rebuilt into scikit-learn trees, the linear model as four arrays of
JSON numbers. Before a model reaches the library every tree is checked: node, child, split and
feature indices in range, children after their parent (so no walk can loop), as many leaves as
the depth implies, leaf values finite, the objective one the task allows, the feature count the
featurizer's width. LightGBM and XGBoost both have open reports of out-of-bounds reads on crafted
model files, and CatBoost's JSON loader trusts every index and count it reads; a bundle that fails
a check is refused with a `BoosterError` before any parsing by the library.

`predict(matrix)` scores a float32 row-major matrix: class probabilities (n × classes) for a
classifier, values for a regressor, exactly what the library's scikit-learn wrapper returns. Small
requests run on one thread (a thread pool's start-up costs more than scoring a row); large
batches use every core.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

WALK_ALL_TREES_UP_TO = 16  # rows up to which a forest walks all its trees at once (ForestBooster._walk)
THREADED_FROM = 500  # rows from which a prediction uses every core (measured on 2 cores: 1,000 rows 7.5 → 4.6 ms)
MAX_SCORE = 1e300  # bound on a model's summed leaf values or linear score: no prediction overflows to inf
_KEY = re.compile(r"^([A-Za-z_]+)=(.*)$")


class BoosterError(ValueError):
    """A stored estimator that fails a check; the message says which."""


class Booster:
    """A fitted estimator of one family: `kind` is binary, multiclass or regression."""

    family: ClassVar[str]
    member: ClassVar[str]  # its file in the bundle

    def __init__(self, native: Any, *, kind: str, n_classes: int, n_features: int) -> None:
        self.native, self.kind, self.n_classes, self.n_features = native, kind, n_classes, n_features

    @property
    def classification(self) -> bool:
        return self.kind != "regression"

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def importances(self) -> np.ndarray | None:
        """What the library's scikit-learn wrapper reports as `feature_importances_`."""
        raise NotImplementedError

    def size(self) -> int:
        """Trees or boosting rounds."""
        raise NotImplementedError

    def libraries(self) -> tuple[str, ...]:
        """Packages the manifest records besides every bundle's (reprotab/model/served.py LIBRARIES)."""
        return ()

    def to_bytes(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def from_bytes(cls, data: bytes, *, kind: str, n_classes: int, n_features: int) -> Booster:
        raise NotImplementedError

    @classmethod
    def from_estimator(cls, estimator: Any, *, kind: str, n_classes: int, n_features: int) -> Booster:
        raise NotImplementedError

    def _both(self, probability: np.ndarray) -> np.ndarray:
        """A binary model's positive-class probability as the wrapper's two columns."""
        p = np.asarray(probability).reshape(-1)
        return np.vstack((1.0 - p, p)).transpose()


# ---- LightGBM -------------------------------------------------------------------------------------

LIGHTGBM_OBJECTIVES = {
    "binary": ("binary",),
    "multiclass": ("multiclass", "multiclassova"),
    "regression": ("regression", "regression_l1", "huber", "fair", "poisson", "quantile", "mape", "gamma", "tweedie"),
}


class LightGBMBooster(Booster):
    family, member = "lightgbm", "booster.txt"

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        threads = 1 if len(matrix) < THREADED_FROM else 0
        out = np.asarray(self.native.predict(matrix, num_threads=threads), dtype=float)
        return self._both(out) if self.kind == "binary" else out

    def importances(self) -> np.ndarray:
        return np.asarray(self.native.feature_importance(importance_type="split"), dtype=float)

    def size(self) -> int:
        return int(self.native.current_iteration())

    def to_bytes(self) -> bytes:
        return self.native.model_to_string(num_iteration=None).encode("utf-8")

    @classmethod
    def from_estimator(cls, estimator: Any, *, kind: str, n_classes: int, n_features: int) -> Booster:
        import lightgbm

        text = estimator.booster_.model_to_string(num_iteration=None)  # the rounds early stopping kept
        return cls(lightgbm.Booster(model_str=text), kind=kind, n_classes=n_classes, n_features=n_features)

    @classmethod
    def from_bytes(cls, data: bytes, *, kind: str, n_classes: int, n_features: int) -> Booster:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise BoosterError("LightGBM model text is not UTF-8") from None
        check_lightgbm(text, kind=kind, n_classes=n_classes, n_features=n_features)
        import lightgbm

        try:
            native = lightgbm.Booster(model_str=text)
        except lightgbm.basic.LightGBMError as exc:
            raise BoosterError(f"LightGBM refused the model text ({str(exc).splitlines()[0][:200]})") from None
        return cls(native, kind=kind, n_classes=n_classes, n_features=n_features)


def _fields(lines: list[str], where: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in lines:
        if not line or line.startswith("["):
            continue
        match = _KEY.match(line)
        if not match:
            raise BoosterError(f"LightGBM {where}: unreadable line {line[:60]!r}")
        if match.group(1) in found:
            raise BoosterError(f"LightGBM {where}: {match.group(1)} given twice")
        found[match.group(1)] = match.group(2)
    return found


_INT = r"-?[0-9]{1,18}"  # what LightGBM's own parser reads, and nothing Python's int() reads besides
_FLOAT = r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?"
_INTS = re.compile(rf"{_INT}(?: {_INT})*")  # one space between tokens, as LightGBM writes them
_FLOATS = re.compile(rf"{_FLOAT}(?: {_FLOAT})*")
_PARAM = re.compile(r"\[[A-Za-z_][A-Za-z0-9_]*: [^\n]*\]")


def _numbers(value: str, where: str, *, integer: bool) -> np.ndarray:
    """The numbers of one field, each token checked as LightGBM reads it (one regex per field)."""
    if value and not (_INTS if integer else _FLOATS).fullmatch(value):
        raise BoosterError(f"LightGBM {where} must hold {'integers' if integer else 'numbers'}")
    tokens = value.split(" ") if value else []
    parsed = np.array(tokens, dtype=np.int64 if integer else np.float64)  # checked tokens: NumPy parses them in C
    if not integer and not np.all(np.isfinite(parsed)):
        raise BoosterError(f"LightGBM {where} must hold finite numbers")
    return parsed


def check_lightgbm(text: str, *, kind: str, n_classes: int, n_features: int) -> None:
    """Every structural fact LightGBM's parser trusts, checked (BoosterError if one fails)."""
    if not text.startswith("tree\n") or "\nend of trees" not in text:
        raise BoosterError("LightGBM model text must start with 'tree' and hold 'end of trees'")
    body, _, tail = text.partition("\nend of trees")
    _check_lightgbm_tail(tail)
    starts = [m.start() for m in re.finditer(r"^Tree=", body, re.M)]
    if not starts:
        raise BoosterError("LightGBM model text holds no tree")
    header = _fields(body[: starts[0]].split("\n")[1:], "header")
    for key in ("version", "num_class", "num_tree_per_iteration", "max_feature_idx", "objective", "tree_sizes"):
        if key not in header:
            raise BoosterError(f"LightGBM header lacks {key}")
    for key in ("max_feature_idx", "num_class", "num_tree_per_iteration"):
        if len(_numbers(header[key], key, integer=True)) != 1:
            raise BoosterError(f"LightGBM {key} must be one integer")
    if int(_numbers(header["max_feature_idx"], "max_feature_idx", integer=True)[0]) != n_features - 1:
        raise BoosterError(f"LightGBM max_feature_idx must be {n_features - 1} (the featurizer's width - 1)")
    per_iteration = 1 if kind != "multiclass" else n_classes
    if (
        int(_numbers(header["num_class"], "num_class", integer=True)[0]) != per_iteration
        or int(_numbers(header["num_tree_per_iteration"], "num_tree_per_iteration", integer=True)[0]) != per_iteration
    ):
        raise BoosterError(f"LightGBM num_class and num_tree_per_iteration must be {per_iteration} for a {kind} model")
    objective = header["objective"].split(" ")[0]
    if objective not in LIGHTGBM_OBJECTIVES[kind]:
        raise BoosterError(f"LightGBM objective {objective!r} is not one a {kind} model uses")
    if len(header.get("feature_names", "").split()) != n_features:
        raise BoosterError(f"LightGBM feature_names must name {n_features} features")
    sizes = _numbers(header["tree_sizes"], "tree_sizes", integer=True)
    ends = [*starts[1:], len(body) + 1]
    if len(starts) % per_iteration or sizes.tolist() != [b - a for a, b in zip(starts, ends, strict=True)]:
        raise BoosterError("LightGBM tree_sizes do not match the trees given")
    for k, (start, end) in enumerate(zip(starts, ends, strict=True)):
        _check_lightgbm_tree(body[start:end].split("\n"), k, n_features)


TREE_FIELDS = {  # every key a tree may have: integers or not, how many values (LightGBM aborts on others)
    "num_leaves": (True, "one"),
    "num_cat": (True, "one"),
    "split_feature": (True, "internal"),
    "split_gain": (False, "internal"),
    "threshold": (False, "internal"),
    "decision_type": (True, "internal"),
    "left_child": (True, "internal"),
    "right_child": (True, "internal"),
    "leaf_value": (False, "leaves"),
    "leaf_weight": (False, "leaves"),
    "leaf_count": (True, "leaves"),
    "internal_value": (False, "internal"),
    "internal_weight": (False, "internal"),
    "internal_count": (True, "internal"),
    "is_linear": (True, "one"),
    "shrinkage": (False, "one"),
}


def _check_lightgbm_tail(tail: str) -> None:
    """What follows the trees: LightGBM itself parses the parameters, and a line it cannot split
    into [key: value] makes it read out of bounds."""
    section = ""
    for line in tail.split("\n")[1:]:
        if line in ("", "feature_importances:", "parameters:", "end of parameters"):
            section = line or section
        elif line.startswith("pandas_categorical:"):
            section = "pandas_categorical:"
        elif not (
            (section == "feature_importances:" and re.fullmatch(r"[^\s=]+=[0-9]+", line))
            or (section == "parameters:" and _PARAM.fullmatch(line))
        ):
            raise BoosterError(f"LightGBM model text: unreadable line after the trees {line[:60]!r}")


def _check_lightgbm_tree(lines: list[str], k: int, n_features: int) -> None:
    where = f"tree {k}"
    if lines[0] != f"Tree={k}":
        raise BoosterError(f"LightGBM {where}: trees must be numbered in order")
    content = lines[1:]
    while content and not content[-1]:
        content.pop()
    if any(not line or line.startswith("[") for line in content):  # LightGBM ends a tree at a blank line
        raise BoosterError(f"LightGBM {where}: a blank or bracketed line inside the tree")
    tree = _fields(content, where)
    if not set(tree) <= set(TREE_FIELDS) or not {"num_leaves", "num_cat", "leaf_value"} <= set(tree):
        raise BoosterError(f"LightGBM {where}: unknown or missing keys")
    leaves = int(_numbers(tree.get("num_leaves", ""), f"{where} num_leaves", integer=True)[:1].sum())
    if not 1 <= leaves <= 1 << 20:
        raise BoosterError(f"LightGBM {where}: num_leaves out of range")
    if tree.get("num_cat", "0") != "0" or tree.get("is_linear", "0") != "0":
        raise BoosterError(f"LightGBM {where}: categorical splits and linear trees are not used by this project")
    sizes = {"one": 1, "internal": leaves - 1, "leaves": leaves}
    for key, (integer, size) in TREE_FIELDS.items():
        if key in tree:
            count = len(_numbers(tree[key], f"{where} {key}", integer=integer))
            if (leaves > 1 and count != sizes[size]) or (leaves == 1 and size == "one" and count != 1):
                raise BoosterError(f"LightGBM {where}: {key} must have {sizes[size]} values")
    values = _numbers(tree.get("leaf_value", ""), f"{where} leaf_value", integer=False)
    if len(values) != leaves:
        raise BoosterError(f"LightGBM {where}: needs {leaves} leaf values")
    if leaves == 1:
        return
    internal = leaves - 1
    arrays = {
        name: _numbers(tree.get(name, ""), f"{where} {name}", integer=True)
        for name in ("split_feature", "left_child", "right_child", "decision_type")
    }
    arrays["threshold"] = _numbers(tree.get("threshold", ""), f"{where} threshold", integer=False)
    if any(len(a) != internal for a in arrays.values()):
        raise BoosterError(f"LightGBM {where}: node arrays must have {internal} entries")
    if np.any((arrays["split_feature"] < 0) | (arrays["split_feature"] >= n_features)):
        raise BoosterError(f"LightGBM {where}: a split feature is out of range")
    if np.any(arrays["decision_type"] & 1):  # bit 0: a categorical split
        raise BoosterError(f"LightGBM {where}: categorical splits are not used by this project")
    node = np.arange(internal)
    leaf_seen = np.zeros(leaves, dtype=int)
    for child in (arrays["left_child"], arrays["right_child"]):
        inner = child >= 0
        if np.any(inner & ((child <= node) | (child >= internal))):  # children after their parent: no cycle
            raise BoosterError(f"LightGBM {where}: a child index is out of range")
        leaf = ~child[~inner]
        if np.any(leaf >= leaves):
            raise BoosterError(f"LightGBM {where}: a leaf index is out of range")
        np.add.at(leaf_seen, leaf, 1)
    if np.any(leaf_seen != 1):
        raise BoosterError(f"LightGBM {where}: every leaf must be reached once")


def check_binary_tree(
    left: np.ndarray, right: np.ndarray, feature: np.ndarray, n_features: int, *, where: str
) -> np.ndarray:
    """A tree stored as child arrays (-1 at a leaf, XGBoost's and scikit-learn's layout): both
    children or none, every child after its parent and inside the tree (so no walk can loop or
    leave it), split features in range. Returns which nodes are leaves."""
    node, count = np.arange(len(left)), len(left)
    leaf = left == -1
    if np.any(leaf != (right == -1)):
        raise BoosterError(f"{where}: a node has one child")
    for child in (left, right):
        if np.any(~leaf & ((child <= node) | (child >= count))):
            raise BoosterError(f"{where}: a child index is out of range")
    if np.any(~leaf & ((feature < 0) | (feature >= n_features))):
        raise BoosterError(f"{where}: a split feature is out of range")
    return leaf


# ---- XGBoost --------------------------------------------------------------------------------------

XGBOOST_OBJECTIVES = {
    "binary": ("binary:logistic",),
    "multiclass": ("multi:softprob",),
    "regression": ("reg:squarederror", "reg:squaredlogerror", "reg:pseudohubererror", "reg:absoluteerror"),
}
XGBOOST_MAX_BYTES = 1 << 30


class XGBoostBooster(Booster):
    family, member = "xgboost", "booster.json"

    def __init__(self, native: Any, *, kind: str, n_classes: int, n_features: int) -> None:
        super().__init__(native, kind=kind, n_classes=n_classes, n_features=n_features)
        native.set_param({"nthread": os.cpu_count() or 1})
        self._one_thread = native.copy()
        self._one_thread.set_param({"nthread": 1})

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        booster = self._one_thread if len(matrix) < THREADED_FROM else self.native
        out = np.asarray(booster.inplace_predict(matrix, validate_features=False))
        if self.kind == "binary":
            return self._both(out)
        return out.astype(float)

    def importances(self) -> np.ndarray:
        names = self.native.feature_names or [f"f{i}" for i in range(self.n_features)]
        score = self.native.get_score(importance_type="gain")
        values = np.array([score.get(name, 0.0) for name in names], dtype=np.float32)
        total = values.sum()
        return (values / total if total else values).astype(float)

    def size(self) -> int:
        return int(self.native.num_boosted_rounds())

    def to_bytes(self) -> bytes:
        return bytes(self.native.save_raw("json"))

    @classmethod
    def from_estimator(cls, estimator: Any, *, kind: str, n_classes: int, n_features: int) -> Booster:
        booster = estimator.get_booster()
        best = (
            getattr(estimator, "best_iteration", None) if estimator.get_params().get("early_stopping_rounds") else None
        )
        if best is not None:  # the wrapper predicts with the rounds early stopping kept
            booster = booster[: best + 1]
        return cls(booster.copy(), kind=kind, n_classes=n_classes, n_features=n_features)

    @classmethod
    def from_bytes(cls, data: bytes, *, kind: str, n_classes: int, n_features: int) -> Booster:
        try:
            model = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise BoosterError("XGBoost model is not JSON") from None
        check_xgboost(model, kind=kind, n_classes=n_classes, n_features=n_features)
        import xgboost

        native = xgboost.Booster()
        try:
            native.load_model(bytearray(data))
        except xgboost.core.XGBoostError as exc:
            raise BoosterError(f"XGBoost refused the model ({str(exc).splitlines()[0][:200]})") from None
        return cls(native, kind=kind, n_classes=n_classes, n_features=n_features)


def _get(raw: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(raw, dict) or key not in raw:
            raise BoosterError(f"XGBoost model lacks {'.'.join(path)}")
        raw = raw[key]
    return raw


def _int_text(raw: Any, where: str) -> int:
    try:
        return int(str(raw))
    except ValueError:
        raise BoosterError(f"XGBoost {where} must be an integer") from None


def _int_array(raw: Any, where: str, length: int) -> np.ndarray:
    if (
        not isinstance(raw, list)
        or len(raw) != length
        or not all(type(v) is int and -(2**31) <= v < 2**31 for v in raw)
    ):
        raise BoosterError(f"XGBoost {where} must be {length} integers")
    return np.asarray(raw, dtype=np.int64)


def check_xgboost(model: Any, *, kind: str, n_classes: int, n_features: int) -> None:
    """Every structural fact XGBoost's loader trusts, checked (BoosterError if one fails)."""
    learner = _get(model, "learner")
    objective = _get(learner, "objective", "name")
    if objective not in XGBOOST_OBJECTIVES[kind]:
        raise BoosterError(f"XGBoost objective {objective!r} is not one a {kind} model uses")
    params = _get(learner, "learner_model_param")
    if _int_text(_get(params, "num_feature"), "num_feature") != n_features:
        raise BoosterError(f"XGBoost num_feature must be {n_features} (the featurizer's width)")
    expected = n_classes if kind == "multiclass" else 0
    if (
        _int_text(_get(params, "num_class"), "num_class") != expected
        or _int_text(params.get("num_target", 1), "num_target") != 1
    ):
        raise BoosterError(f"XGBoost num_class must be {expected} and num_target 1 for a {kind} model")
    booster = _get(learner, "gradient_booster")
    if _get(booster, "name") != "gbtree":
        raise BoosterError("XGBoost booster must be gbtree")
    trees = _get(booster, "model", "trees")
    info = _get(booster, "model", "tree_info")
    if not isinstance(trees, list) or not trees or not isinstance(info, list) or len(info) != len(trees):
        raise BoosterError("XGBoost trees and tree_info must be lists of the same length")
    groups = max(1, expected)
    if any(type(g) is not int or not 0 <= g < groups for g in info):
        raise BoosterError("XGBoost tree_info names a class out of range")
    counts = _get(booster, "model", "gbtree_model_param")
    if (
        _int_text(_get(counts, "num_trees"), "num_trees") != len(trees)
        or _int_text(_get(counts, "num_parallel_tree"), "num_parallel_tree") != 1
    ):
        raise BoosterError("XGBoost num_trees must count the trees, num_parallel_tree be 1")
    if _get(booster, "model", "iteration_indptr") != list(range(0, len(trees) + 1, groups)) or len(trees) % groups:
        raise BoosterError(f"XGBoost iteration_indptr must step by {groups} to the number of trees")
    cats = _get(booster, "model").get("cats", {})
    if isinstance(cats, dict) and any(cats.get(k) for k in ("enc", "feature_segments", "sorted_idx")):
        raise BoosterError("XGBoost categorical features are not used by this project")
    for k, tree in enumerate(trees):
        _check_xgboost_tree(tree, k, n_features)


def _check_xgboost_tree(tree: Any, k: int, n_features: int) -> None:
    where = f"tree {k}"
    nodes = _int_text(_get(tree, "tree_param", "num_nodes"), f"{where} num_nodes")
    if (
        not 1 <= nodes <= 1 << 24
        or _int_text(_get(tree, "tree_param", "size_leaf_vector"), where) not in (0, 1)
        or _int_text(_get(tree, "tree_param", "num_deleted"), where) != 0
    ):
        raise BoosterError(f"XGBoost {where}: num_nodes out of range or vector leaves")
    left = _int_array(_get(tree, "left_children"), f"{where} left_children", nodes)
    right = _int_array(_get(tree, "right_children"), f"{where} right_children", nodes)
    feature = _int_array(_get(tree, "split_indices"), f"{where} split_indices", nodes)
    _int_array(_get(tree, "default_left"), f"{where} default_left", nodes)
    parents = _int_array(_get(tree, "parents"), f"{where} parents", nodes)
    if type(tree.get("id")) is not int or tree["id"] != k:
        raise BoosterError(f"XGBoost {where}: id must be {k}")
    split_type = _int_array(_get(tree, "split_type"), f"{where} split_type", nodes)
    conditions = _get(tree, "split_conditions")
    weights = _get(tree, "base_weights")
    for name, values in (("split_conditions", conditions), ("base_weights", weights)):
        if (
            not isinstance(values, list)
            or len(values) != nodes
            or not all(type(v) is float or (type(v) is int and abs(v) <= 2**53) for v in values)
        ):
            raise BoosterError(f"XGBoost {where} {name} must be {nodes} numbers")
        if not np.all(np.abs(np.asarray(values, dtype=float)) <= np.finfo(np.float32).max):  # XGBoost reads float32
            raise BoosterError(f"XGBoost {where} {name} must be finite float32 numbers")
    if np.any(split_type != 0) or tree.get("categories_nodes"):
        raise BoosterError(f"XGBoost {where}: categorical splits are not used by this project")
    node, leaf = np.arange(nodes), check_binary_tree(left, right, feature, n_features, where=f"XGBoost {where}")
    derived = np.full(nodes, 2**31 - 1, dtype=np.int64)  # the root's parent: XGBoost's invalid node id
    derived[left[~leaf]], derived[right[~leaf]] = node[~leaf], node[~leaf]
    if not np.array_equal(parents, derived):
        raise BoosterError(f"XGBoost {where}: parents do not match the children")


# ---- random forest --------------------------------------------------------------------------------

FOREST_COLUMNS = (  # node arrays stored per column, all trees concatenated, little-endian
    ("left_child", "<i8"),
    ("right_child", "<i8"),
    ("feature", "<i8"),
    ("threshold", "<f8"),
    ("impurity", "<f8"),
    ("n_node_samples", "<i8"),
    ("weighted_n_node_samples", "<f8"),
    ("missing_go_to_left", "u1"),
)
FOREST_PARAMS = {  # estimator settings kept for continued training; only these, only plain values
    "bootstrap",
    "ccp_alpha",
    "class_weight",
    "criterion",
    "max_depth",
    "max_features",
    "max_leaf_nodes",
    "max_samples",
    "min_impurity_decrease",
    "min_samples_leaf",
    "min_samples_split",
    "min_weight_fraction_leaf",
    "n_estimators",
    "n_jobs",
    "oob_score",
    "random_state",
}


class ForestBooster(Booster):
    """A random forest: `forest.bin` is one line of JSON (each tree's node count and depth, the
    estimator's settings for continued training), then the node arrays and leaf values."""

    family, member = "random_forest", "forest.bin"

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        if len(matrix) <= WALK_ALL_TREES_UP_TO:
            return self._walk(matrix)
        if len(matrix) < THREADED_FROM:
            return self._predict(matrix)
        chunks = np.array_split(np.arange(len(matrix)), os.cpu_count() or 1)
        with ThreadPoolExecutor(len(chunks)) as pool:  # trees' Cython code releases the GIL
            parts = list(
                pool.map(lambda rows: self._predict(matrix[rows[0] : rows[-1] + 1]), [c for c in chunks if len(c)])
            )
        return np.concatenate(parts)

    @functools.cached_property
    def _flat(self) -> tuple[np.ndarray, ...]:
        """Every tree's nodes in one set of arrays (children as positions in them; -1 at leaves),
        each tree's root, and the deepest tree's depth."""
        trees = [tree.tree_ for tree in self.native.estimators_]
        starts = np.cumsum([0] + [t.node_count for t in trees[:-1]])
        left = np.concatenate(
            [np.where(t.children_left >= 0, t.children_left + s, -1) for t, s in zip(trees, starts, strict=True)]
        )
        right = np.concatenate(
            [np.where(t.children_right >= 0, t.children_right + s, -1) for t, s in zip(trees, starts, strict=True)]
        )
        feature = np.concatenate([np.where(t.children_left >= 0, t.feature, 0) for t in trees])  # leaves: unused
        threshold = np.concatenate([t.threshold for t in trees])
        width = self.n_classes if self.classification else 1
        value = np.concatenate([t.value[:, 0, :width] for t in trees])
        return left, right, feature, threshold, value, starts, np.array(max(t.max_depth for t in trees))

    def _walk(self, matrix: np.ndarray) -> np.ndarray:
        """A few rows through every tree at once, one level per step: a request of one row pays
        NumPy's per-call cost once per level instead of once per tree (300 trees: 1.3 → 0.3 ms)."""
        left, right, feature, threshold, value, roots, depth = self._flat
        node = np.repeat(roots[None, :], len(matrix), axis=0)
        rows = np.arange(len(matrix))[:, None]
        for _ in range(int(depth)):
            inner = left[node] >= 0
            if not inner.any():
                break
            goes_left = matrix[rows, feature[node]] <= threshold[node]  # float32 against float64, as the trees compare
            node = np.where(inner, np.where(goes_left, left[node], right[node]), node)
        total = value[node].sum(axis=1) / len(roots)
        return total if self.classification else total[:, 0]

    def _predict(self, matrix: np.ndarray) -> np.ndarray:
        """The forest's predict_proba / predict: trees summed in order, then divided."""
        trees = self.native.estimators_
        total: np.ndarray
        if self.classification:
            total = np.zeros((len(matrix), self.n_classes), dtype=np.float64)
            for tree in trees:
                total += tree.tree_.predict(matrix)[:, : self.n_classes]
        else:
            total = np.zeros(len(matrix), dtype=np.float64)
            for tree in trees:
                total += tree.tree_.predict(matrix)[:, 0]
        total /= len(trees)
        return total

    def importances(self) -> np.ndarray:
        return np.asarray(self.native.feature_importances_, dtype=float)

    def size(self) -> int:
        return len(self.native.estimators_)

    def to_bytes(self) -> bytes:
        trees = [tree.tree_ for tree in self.native.estimators_]
        params = {k: v for k, v in self.native.get_params().items() if k in FOREST_PARAMS and _plain(v)}
        header = {"trees": [[t.node_count, t.max_depth] for t in trees], "params": params}
        parts = [json.dumps(header, sort_keys=True).encode() + b"\n"]
        for name, dtype in FOREST_COLUMNS:
            parts += [np.ascontiguousarray(t.__getstate__()["nodes"][name], dtype=dtype).tobytes() for t in trees]
        parts += [np.ascontiguousarray(t.value, dtype="<f8").tobytes() for t in trees]
        return b"".join(parts)

    @classmethod
    def from_estimator(cls, estimator: Any, *, kind: str, n_classes: int, n_features: int) -> Booster:
        return cls(estimator, kind=kind, n_classes=n_classes, n_features=n_features)

    @classmethod
    def from_bytes(cls, data: bytes, *, kind: str, n_classes: int, n_features: int) -> Booster:
        line, newline, rest = data.partition(b"\n")
        try:
            header = json.loads(line) if newline else None
        except (ValueError, UnicodeDecodeError, RecursionError):
            header = None
        if not isinstance(header, dict) or set(header) != {"trees", "params"}:
            raise BoosterError("forest header must be a JSON object with trees and params")
        shapes, params = header["trees"], header["params"]
        if (
            not isinstance(shapes, list)
            or not 1 <= len(shapes) <= 100_000
            or not all(
                isinstance(s, list) and len(s) == 2 and all(type(v) is int and 0 <= v <= 1 << 26 for v in s)
                for s in shapes
            )
        ):
            raise BoosterError("forest header trees must be [node count, depth] pairs")
        if not isinstance(params, dict) or not set(params) <= FOREST_PARAMS or not all(map(_plain, params.values())):
            raise BoosterError(f"forest params must be plain values of {sorted(FOREST_PARAMS)}")
        counts = [s[0] for s in shapes]
        total, width = sum(counts), n_classes if kind != "regression" else 1
        expected = sum(total * np.dtype(d).itemsize for _, d in FOREST_COLUMNS) + total * width * 8
        if any(c < 1 for c in counts) or len(rest) != expected:
            raise BoosterError(f"forest arrays must be {expected} bytes for {total} nodes ({len(rest)} given)")
        columns, offset = {}, 0
        for name, dtype in FOREST_COLUMNS:
            size = total * np.dtype(dtype).itemsize
            columns[name], offset = np.frombuffer(rest, dtype=dtype, count=total, offset=offset), offset + size
        values = np.frombuffer(rest, dtype="<f8", count=total * width, offset=offset).reshape(total, 1, width)
        if not np.all(np.isfinite(values)) or not np.all(np.isfinite(columns["threshold"])):
            raise BoosterError("forest thresholds and leaf values must be finite")
        if kind != "regression" and (
            np.any(values < 0) or np.any(values > 1) or np.any(np.abs(values.sum(axis=2) - 1) > 1e-6)
        ):
            raise BoosterError("forest class values must be fractions summing to 1 at every node")
        trees, start = [], 0
        for k, (count, depth) in enumerate(shapes):
            part = {name: column[start : start + count] for name, column in columns.items()}
            _check_forest_tree(part, k, n_features)
            trees.append((count, depth, part, values[start : start + count]))
            start += count
        return cls(
            _rebuild_forest(trees, params, kind, n_classes, n_features),
            kind=kind,
            n_classes=n_classes,
            n_features=n_features,
        )


def _plain(value: Any) -> bool:
    return value is None or type(value) in (bool, int, float, str)


def _check_forest_tree(part: dict[str, np.ndarray], k: int, n_features: int) -> None:
    check_binary_tree(part["left_child"], part["right_child"], part["feature"], n_features, where=f"forest tree {k}")
    if np.any(part["missing_go_to_left"] > 1):
        raise BoosterError(f"forest tree {k}: missing_go_to_left must be 0 or 1")


def _rebuild_forest(trees: list[Any], params: dict[str, Any], kind: str, n_classes: int, n_features: int) -> Any:
    """scikit-learn estimators around checked node arrays (what their own unpickling does)."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
    from sklearn.tree._tree import NODE_DTYPE, Tree

    classify = kind != "regression"
    width = n_classes if classify else 1
    forest = (RandomForestClassifier if classify else RandomForestRegressor)(**params)
    estimators = []
    for count, depth, part, values in trees:
        nodes = np.zeros(count, dtype=NODE_DTYPE)
        for name in part:
            nodes[name] = part[name]
        tree = Tree(n_features, np.array([width], dtype=np.intp), 1)
        tree.__setstate__({"max_depth": depth, "node_count": count, "nodes": nodes, "values": np.array(values)})
        estimator = (DecisionTreeClassifier if classify else DecisionTreeRegressor)()
        estimator.tree_, estimator.n_features_in_, estimator.n_outputs_ = tree, n_features, 1
        estimator.max_features_ = n_features
        if classify:
            estimator.classes_, estimator.n_classes_ = np.arange(n_classes), n_classes
        estimators.append(estimator)
    forest.estimators_, forest.n_features_in_, forest.n_outputs_ = estimators, n_features, 1
    forest.estimator_ = (DecisionTreeClassifier if classify else DecisionTreeRegressor)()
    if classify:
        forest.classes_, forest.n_classes_ = np.arange(n_classes), n_classes
    return forest


# ---- CatBoost -------------------------------------------------------------------------------------

CATBOOST_LOSSES = {  # regression: losses whose prediction is the raw sum (Poisson and Tweedie exponentiate it)
    "binary": ("Logloss", "CrossEntropy"),
    "multiclass": ("MultiClass",),
    "regression": ("RMSE", "MAE", "Quantile", "Expectile", "Huber", "LogCosh", "Lq", "MAPE"),
}
CATBOOST_MAX_BYTES = 1 << 30
CATBOOST_MAX_DEPTH = 16  # CatBoost's own limit for symmetric trees
CATBOOST_MAX_BORDERS = 65535  # CatBoost's limit on a float feature's border_count
CATBOOST_VOLATILE = ("model_guid", "train_finish_time")  # differ between two equal fits: dropped so a model reproduces
CATBOOST_INFO = {"catboost_version_info", "class_params", "output_options", "params", "training"}
CATBOOST_FEATURE = {"borders", "feature_id", "feature_index", "flat_feature_index", "has_nans", "nan_value_treatment"}
CATBOOST_SPLIT = {"border", "float_feature_index", "split_index", "split_type"}


class CatBoostBooster(Booster):
    """CatBoost's JSON model (`save_model(format="json")`) without the fields that change from fit to
    fit. CatBoost loads JSON only from a file, and only JSON re-written by Python from the checked
    document: its parser never sees a duplicate key or a number the checks read differently."""

    family, member = "catboost", "catboost.json"

    def libraries(self) -> tuple[str, ...]:
        return ("catboost",)

    def __init__(self, native: Any, *, kind: str, n_classes: int, n_features: int, data: bytes) -> None:
        super().__init__(native, kind=kind, n_classes=n_classes, n_features=n_features)
        self._data = data

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        threads = 1 if len(matrix) < THREADED_FROM else -1
        if self.classification:
            return np.asarray(self.native.predict_proba(matrix, thread_count=threads), dtype=float)
        return np.asarray(self.native.predict(matrix, thread_count=threads), dtype=float)

    def importances(self) -> np.ndarray:
        return np.asarray(self.native.get_feature_importance(), dtype=float)  # the wrapper's: shares summing to 100

    def size(self) -> int:
        return int(self.native.tree_count_)

    def to_bytes(self) -> bytes:
        return self._data  # the bytes it was checked and loaded from (CatBoost's own JSON writer drifts on reload)

    @classmethod
    def from_estimator(cls, estimator: Any, *, kind: str, n_classes: int, n_features: int) -> Booster:
        with tempfile.TemporaryDirectory(prefix="reprotab-catboost-") as folder:
            path = Path(folder) / "model.json"
            estimator.save_model(str(path), format="json")  # use_best_model already cut it to the kept rounds
            model = _strict_json(path.read_bytes(), "CatBoost model")
        info = model.get("model_info") if isinstance(model, dict) else None
        if isinstance(info, dict):
            for key in CATBOOST_VOLATILE:
                info.pop(key, None)
        return cls.from_bytes(_catboost_text(model), kind=kind, n_classes=n_classes, n_features=n_features)

    @classmethod
    def from_bytes(cls, data: bytes, *, kind: str, n_classes: int, n_features: int) -> Booster:
        if len(data) > CATBOOST_MAX_BYTES:
            raise BoosterError(f"CatBoost model is larger than {CATBOOST_MAX_BYTES} bytes")
        model = _strict_json(data, "CatBoost model")
        check_catboost(model, kind=kind, n_classes=n_classes, n_features=n_features)
        import catboost

        native = (catboost.CatBoostClassifier if kind != "regression" else catboost.CatBoostRegressor)()
        probe = np.zeros((1, n_features), dtype=np.float32)
        try:
            with tempfile.TemporaryDirectory(prefix="reprotab-catboost-") as folder:
                path = Path(folder) / "model.json"
                path.write_bytes(_catboost_text(model))
                native.load_model(str(path), format="json")
            # CatBoost reads some of the model (the loss, the class labels) only when it predicts
            shape = np.shape(
                native.predict_proba(probe, thread_count=1) if kind != "regression" else native.predict(probe)
            )
        except catboost.CatBoostError as exc:
            raise BoosterError(f"CatBoost refused the model ({str(exc).splitlines()[0][:200]})") from None
        if shape != ((1, n_classes) if kind != "regression" else (1,)):
            raise BoosterError(f"CatBoost predicts shape {shape} for one row of a {kind} model")
        return cls(native, kind=kind, n_classes=n_classes, n_features=n_features, data=bytes(data))


def _catboost_text(model: Any) -> bytes:
    """The JSON CatBoost reads: UTF-8 unescaped (its parser misreads an escaped lone surrogate)."""
    return json.dumps(model, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _strict_json(data: bytes, what: str) -> Any:
    """JSON as UTF-8 with no key twice and only finite numbers: what a second parser reads the same."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found = dict(pairs)
        if len(found) != len(pairs):
            raise BoosterError(f"{what} names a key twice")
        return found

    try:
        return json.loads(
            data.decode("utf-8"), object_pairs_hook=unique, parse_constant=_no_constant, parse_float=_finite
        )
    except BoosterError:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BoosterError(f"{what} is not JSON") from None


def _no_constant(value: str) -> Any:
    raise ValueError(f"{value} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not np.isfinite(value):  # 1e400: Python reads inf, another parser may not
        raise ValueError(f"{text} is not a finite number")
    return value


_UNSAFE_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


def _check_text(model: Any, what: str) -> None:
    """No key or string with a control character (newline and tab aside) or a lone surrogate:
    text that JSON parsers read differently, or that no UTF-8 writer can write."""
    stack = [model]
    while stack:  # not recursive: a deeply nested document cannot exhaust the stack
        node = stack.pop()
        if isinstance(node, dict):
            stack += [*node.keys(), *node.values()]
        elif isinstance(node, list):
            stack += node
        elif isinstance(node, str) and _UNSAFE_TEXT.search(node):
            raise BoosterError(f"{what} holds text with a control character or a lone surrogate")


def _is_number(value: Any) -> bool:
    """A JSON number that is a float64 as written (no bool, no integer past 2**53)."""
    return type(value) is float or (type(value) is int and abs(value) <= 2**53)


def _catboost_numbers(raw: Any, count: int, where: str) -> np.ndarray:
    if not isinstance(raw, list) or len(raw) != count or not all(map(_is_number, raw)):
        raise BoosterError(f"CatBoost {where} must be a list of numbers, {count} long")
    values = np.asarray(raw, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise BoosterError(f"CatBoost {where} must be finite")
    return values


def check_catboost(model: Any, *, kind: str, n_classes: int, n_features: int) -> None:
    """Every structural fact CatBoost's JSON loader trusts, checked (BoosterError if one fails)."""
    if not isinstance(model, dict) or set(model) != {
        "features_info",
        "model_info",
        "oblivious_trees",
        "scale_and_bias",
    }:
        if isinstance(model, dict) and "trees" in model:
            raise BoosterError("CatBoost model must have symmetric trees (grow_policy SymmetricTree)")
        raise BoosterError(
            "CatBoost model must hold exactly features_info, model_info, oblivious_trees and scale_and_bias"
        )
    _check_text(model, "CatBoost model")
    _check_catboost_info(model["model_info"], kind=kind, n_classes=n_classes)
    bins = _catboost_bins(model["features_info"], n_features)
    trees = model["oblivious_trees"]
    if not isinstance(trees, list) or not 1 <= len(trees) <= 1 << 20:
        raise BoosterError("CatBoost oblivious_trees must be a list of 1 to 1048576 trees")
    dimension = n_classes if kind == "multiclass" else 1
    reach = sum(_check_catboost_tree(tree, k, bins, dimension) for k, tree in enumerate(trees))
    scale_and_bias = model["scale_and_bias"]
    if not isinstance(scale_and_bias, list) or len(scale_and_bias) != 2:
        raise BoosterError("CatBoost scale_and_bias must be [scale, [bias, ...]]")
    if not _is_number(scale_and_bias[0]):
        raise BoosterError("CatBoost scale must be a number")
    scale = float(scale_and_bias[0])
    bias = _catboost_numbers(scale_and_bias[1], dimension, "bias")
    if not abs(scale) * reach + np.abs(bias).max() <= MAX_SCORE:
        raise BoosterError("CatBoost leaf values are too large for a finite prediction")


def _check_catboost_info(info: Any, *, kind: str, n_classes: int) -> None:
    """The loss (which decides what predict returns) one the task uses, the class labels 0..n-1."""
    if not isinstance(info, dict) or "params" not in info or not set(info) <= CATBOOST_INFO:
        raise BoosterError(f"CatBoost model_info must hold params and nothing but {sorted(CATBOOST_INFO)}")
    if any(
        not isinstance(info[key], str) for key in ("catboost_version_info", "output_options", "training") if key in info
    ):
        raise BoosterError("CatBoost model_info catboost_version_info, output_options and training must be text")
    params = info["params"]
    loss = params.get("loss_function") if isinstance(params, dict) else None
    if (
        not isinstance(loss, dict)
        or set(loss) != {"type", "params"}
        or not isinstance(loss["params"], dict)
        or not all(isinstance(value, str) for value in loss["params"].values())
    ):
        raise BoosterError("CatBoost model_info params must give loss_function as its type and text params")
    if loss["type"] not in CATBOOST_LOSSES[kind]:
        raise BoosterError(f"CatBoost loss function {loss['type']!r} is not one a {kind} model uses")
    if kind == "regression":
        if "class_params" in info:
            raise BoosterError("CatBoost class_params apply to classifiers only")
        return
    classes, expected = info.get("class_params"), list(range(n_classes))
    if (
        not isinstance(classes, dict)
        or not set(classes) <= {"class_label_type", "class_names", "class_to_label", "classes_count"}
        or classes.get("class_label_type") != "Integer"
        or not all(
            isinstance(labels, list) and all(type(c) is int for c in labels) and labels == expected
            for labels in (classes.get("class_names"), classes.get("class_to_label", expected))
        )
        or classes.get("classes_count", 0) not in (0, n_classes)
        or type(classes.get("classes_count", 0)) is not int
    ):
        raise BoosterError(f"CatBoost class_params must name the integer classes 0 to {n_classes - 1}")


def _catboost_bins(info: Any, n_features: int) -> list[tuple[int, Any]]:
    """The float features' (feature, border) pairs in CatBoost's order: what a split_index indexes."""
    if not isinstance(info, dict) or set(info) != {"float_features"}:
        raise BoosterError("CatBoost features_info must hold float features only (no categorical or CTR features)")
    features = info["float_features"]
    if not isinstance(features, list) or len(features) != n_features:
        raise BoosterError(f"CatBoost model must have {n_features} float features (the featurizer's width)")
    bins: list[tuple[int, Any]] = []
    for i, feature in enumerate(features):
        where = f"float feature {i}"
        if not isinstance(feature, dict) or not CATBOOST_FEATURE <= set(feature) <= CATBOOST_FEATURE | {"feature_name"}:
            raise BoosterError(f"CatBoost {where}: unknown or missing keys")
        if any(type(feature[key]) is not int or feature[key] != i for key in ("feature_index", "flat_feature_index")):
            raise BoosterError(f"CatBoost {where}: feature_index and flat_feature_index must be {i}")
        if (
            type(feature["has_nans"]) is not bool
            or feature["nan_value_treatment"] not in ("AsIs", "AsFalse", "AsTrue")
            or not all(isinstance(feature.get(key, ""), str) for key in ("feature_id", "feature_name"))
        ):
            raise BoosterError(f"CatBoost {where}: has_nans, nan_value_treatment or its name is not valid")
        borders = feature["borders"]
        if not isinstance(borders, list) or len(borders) > CATBOOST_MAX_BORDERS:
            raise BoosterError(f"CatBoost {where}: borders must be a list of at most {CATBOOST_MAX_BORDERS}")
        values = _catboost_numbers(borders, len(borders), f"{where} borders")
        if np.any(np.abs(values) > np.finfo(np.float32).max) or np.any(np.diff(values) <= 0):  # CatBoost reads float32
            raise BoosterError(f"CatBoost {where}: borders must be increasing float32 numbers")
        bins += [(i, border) for border in borders]
    return bins


def _check_catboost_tree(tree: Any, k: int, bins: list[tuple[int, Any]], dimension: int) -> float:
    """One symmetric tree; returns its largest leaf value's magnitude."""
    where = f"tree {k}"
    if not isinstance(tree, dict) or set(tree) != {"leaf_values", "leaf_weights", "splits"}:
        raise BoosterError(f"CatBoost {where}: must hold exactly leaf_values, leaf_weights and splits")
    splits = tree["splits"]
    if not isinstance(splits, list) or len(splits) > CATBOOST_MAX_DEPTH:
        raise BoosterError(f"CatBoost {where}: splits must be a list of at most {CATBOOST_MAX_DEPTH} (its depth)")
    for split in splits:
        if not isinstance(split, dict) or set(split) != CATBOOST_SPLIT or split["split_type"] != "FloatFeature":
            raise BoosterError(
                f"CatBoost {where}: every split must be a float feature's (no categorical or CTR splits)"
            )
        index = split["split_index"]
        if type(index) is not int or not 0 <= index < len(bins):
            raise BoosterError(f"CatBoost {where}: a split index is out of range")
        feature, border = split["float_feature_index"], split["border"]
        if type(feature) is not int or not _is_number(border) or (feature, border) != bins[index]:
            raise BoosterError(f"CatBoost {where}: a split's feature and border are not those of its split index")
    leaves = 1 << len(splits)
    values = _catboost_numbers(tree["leaf_values"], leaves * dimension, f"{where} leaf_values")
    weights = _catboost_numbers(tree["leaf_weights"], leaves, f"{where} leaf_weights")
    if np.any(weights < 0):
        raise BoosterError(f"CatBoost {where} leaf_weights must not be negative")
    return float(np.abs(values).max())


# ---- linear ---------------------------------------------------------------------------------------


class LinearBooster(Booster):
    """A linear model (reprotab/train/linear.py): `linear.json` holds its kind and its mean, scale,
    coef and intercept as JSON numbers (Python writes a float64's shortest repr and reads it back
    exactly), nothing else; loading sets them on a new estimator, so it predicts with the same
    arithmetic. The kind is stored because a binary and a regression model have the same shapes."""

    family, member = "linear", "linear.json"

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):  # the sigmoid of a very negative score: exp overflows to 0, as fitted
            if self.classification:
                return np.asarray(self.native.predict_proba(matrix), dtype=float)
            return np.asarray(self.native.predict(matrix), dtype=float)

    def importances(self) -> np.ndarray:
        return np.asarray(self.native.feature_importances_, dtype=float)

    def size(self) -> int:
        return 1

    def to_bytes(self) -> bytes:
        arrays = {"mean": self.native.mean_, "scale": self.native.scale_}
        arrays |= {"coef": self.native.coef_, "intercept": self.native.intercept_}
        lists = {name: np.asarray(values, dtype=np.float64).tolist() for name, values in arrays.items()}
        return json.dumps({"kind": self.kind, **lists}, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()

    @classmethod
    def from_estimator(cls, estimator: Any, *, kind: str, n_classes: int, n_features: int) -> Booster:
        plain = cls(estimator, kind=kind, n_classes=n_classes, n_features=n_features)
        return cls.from_bytes(plain.to_bytes(), kind=kind, n_classes=n_classes, n_features=n_features)

    @classmethod
    def from_bytes(cls, data: bytes, *, kind: str, n_classes: int, n_features: int) -> Booster:
        arrays = check_linear(_strict_json(data, "linear model"), kind=kind, n_classes=n_classes, n_features=n_features)
        from reprotab.train.linear import LinearClassifier, LinearRegressor

        native = LinearClassifier() if kind != "regression" else LinearRegressor()
        native.mean_, native.scale_ = arrays["mean"], arrays["scale"]
        native.coef_, native.intercept_ = arrays["coef"], arrays["intercept"]
        native.n_features_in_ = n_features
        if kind != "regression":
            native.classes_ = np.arange(n_classes)
        return cls(native, kind=kind, n_classes=n_classes, n_features=n_features)


def _linear_floats(raw: Any, count: int, where: str) -> np.ndarray:
    if not isinstance(raw, list) or len(raw) != count or not all(type(v) is float for v in raw):
        raise BoosterError(f"linear model {where} must be a list of floats, {count} long")
    values = np.array(raw, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise BoosterError(f"linear model {where} must be finite")
    return values


def check_linear(model: Any, *, kind: str, n_classes: int, n_features: int) -> dict[str, np.ndarray]:
    """The kind, and four arrays of the shapes it needs (one row of coefficients, or one per class
    for multiclass), finite, scale positive, and small enough that no score overflows."""
    from reprotab.train.linear import STANDARD_CLIP

    if not isinstance(model, dict) or set(model) != {"coef", "intercept", "kind", "mean", "scale"}:
        raise BoosterError("linear model must be a JSON object with exactly kind, coef, intercept, mean and scale")
    if model["kind"] != kind:
        raise BoosterError(f"linear model is for {str(model['kind'])[:40]!r}, not a {kind} model")
    rows = n_classes if kind == "multiclass" else 1
    coef = model["coef"]
    if not isinstance(coef, list) or len(coef) != rows:
        raise BoosterError(
            f"linear model coef must be {rows} × {n_features} floats (classes × features) for a {kind} model"
        )
    arrays = {
        "mean": _linear_floats(model["mean"], n_features, "mean"),
        "scale": _linear_floats(model["scale"], n_features, "scale"),
        "coef": np.array([_linear_floats(row, n_features, f"coef row {k}") for k, row in enumerate(coef)]),
        "intercept": _linear_floats(model["intercept"], rows, "intercept"),
    }
    arrays["coef"] = arrays["coef"].reshape(rows, n_features)
    if not np.all(arrays["scale"] > 0):
        raise BoosterError("linear model scale must be positive")
    with np.errstate(over="ignore"):
        reach = STANDARD_CLIP * np.abs(arrays["coef"]).sum(axis=1) + np.abs(arrays["intercept"])
    if not np.all(reach <= MAX_SCORE):  # standardised values are clipped: this bounds every score
        raise BoosterError("linear model coef and intercept are too large for a finite score")
    return arrays


# ---- an ensemble of the above ---------------------------------------------------------------------

ENSEMBLE_MAX_MEMBERS = 50  # reprotab/train/ensemble.py MAX_MEMBERS


class EnsembleBooster(Booster):
    """A weighted blend of other families' boosters (`model: ensemble`). One JSON member lists each
    member's family, weight and stored model (base64 of that family's own format); each member
    goes through its own family's checks and loader, and an ensemble cannot hold an ensemble."""

    family, member = "ensemble", "ensemble.json"

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        members = iter(self.native)
        booster, weight = next(members)
        total = weight * np.asarray(booster.predict(matrix), dtype=float)
        for booster, weight in members:
            total += weight * np.asarray(booster.predict(matrix), dtype=float)
        return total

    def importances(self) -> np.ndarray:
        """Each member's importances as shares of their total, weighted by the member's weight."""
        total = np.zeros(self.n_features)
        for booster, weight in self.native:
            values = np.asarray(booster.importances(), dtype=float)
            scale = values.sum()
            total += weight * (values / scale if scale > 0 else values)
        return total

    def size(self) -> int:
        return sum(booster.size() for booster, _ in self.native)

    def libraries(self) -> tuple[str, ...]:
        return tuple(sorted({name for booster, _ in self.native for name in booster.libraries()}))

    def to_bytes(self) -> bytes:
        members = [
            {"family": b.family, "weight": w, "model": base64.b64encode(b.to_bytes()).decode("ascii")}
            for b, w in self.native
        ]
        return json.dumps({"members": members}, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_estimator(cls, estimator: Any, *, kind: str, n_classes: int, n_features: int) -> Booster:
        shape: dict[str, Any] = {"kind": kind, "n_classes": n_classes, "n_features": n_features}
        fitted = zip(estimator.families_, estimator.estimators_, estimator.weights_, strict=True)
        members = [(BOOSTERS[family].from_estimator(one, **shape), float(weight)) for family, one, weight in fitted]
        return cls(members, **shape)

    @classmethod
    def from_bytes(cls, data: bytes, *, kind: str, n_classes: int, n_features: int) -> Booster:
        raw = _strict_json(data, "ensemble")
        members = raw.get("members") if isinstance(raw, dict) else None
        if not isinstance(members, list) or not 1 <= len(members) <= ENSEMBLE_MAX_MEMBERS or set(raw) != {"members"}:
            raise BoosterError(f"ensemble must hold 'members' only: a list of 1 to {ENSEMBLE_MAX_MEMBERS}")
        shape: dict[str, Any] = {"kind": kind, "n_classes": n_classes, "n_features": n_features}
        loaded = []
        for index, member in enumerate(members):
            where = f"ensemble member {index}"
            if not isinstance(member, dict) or set(member) != {"family", "weight", "model"}:
                raise BoosterError(f"{where} must hold family, weight and model only")
            family, weight, model = member["family"], member["weight"], member["model"]
            if family not in BOOSTERS or family == cls.family:
                raise BoosterError(f"{where} names no member family ({str(family)[:40]!r})")
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= 1:
                raise BoosterError(f"{where} has a weight outside (0, 1]")
            if not isinstance(model, str):
                raise BoosterError(f"{where} holds no model text")
            try:
                stored = base64.b64decode(model, validate=True)
            except (ValueError, binascii.Error):
                raise BoosterError(f"{where}'s model is not base64") from None
            try:
                loaded.append((BOOSTERS[family].from_bytes(stored, **shape), float(weight)))
            except BoosterError as exc:
                raise BoosterError(f"{where} ({family}): {exc}") from None
        if abs(sum(w for _, w in loaded) - 1.0) > 1e-6:
            raise BoosterError("ensemble weights do not sum to 1")
        return cls(loaded, **shape)


BOOSTERS: dict[str, type[Booster]] = {
    b.family: b
    for b in (LightGBMBooster, XGBoostBooster, ForestBooster, CatBoostBooster, LinearBooster, EnsembleBooster)
}
