"""bench/fuzz_bundles.py in the suite: a few hundred mutated model bundles (every mutation kind, on
fifteen small real models: LightGBM, XGBoost, a random forest, CatBoost and a linear model, each
binary, multiclass and regression) through `served.loads`, each case in a worker process with a timeout. Every case must
be refused with one UserError or load as a valid model: none may crash (an exception other than
UserError, or the worker killed by a signal), hang, exhaust memory or load when it must be refused
(or load as a model that cannot predict finite probabilities). At length:
`.venv/bin/python bench/fuzz_bundles.py --cases 100000 --seed 0`."""

from __future__ import annotations

from collections import Counter
from types import ModuleType
from typing import Any

import pytest

from tests.helpers import load_bench

ROUNDS = 15  # cases per mutation kind: 345 in all, about 15 s on 2 cores


@pytest.fixture(scope="module")
def fuzzer() -> ModuleType:
    return load_bench("fuzz_bundles")


@pytest.fixture(scope="module")
def bases(fuzzer: ModuleType) -> dict[str, bytes]:
    bundles: dict[str, bytes] = fuzzer.train_bases()
    return bundles


@pytest.fixture(scope="module")
def report(fuzzer: ModuleType, bases: dict[str, bytes]) -> Any:
    return fuzzer.fuzz(bases, ROUNDS * len(fuzzer.KINDS), seed=0, workers=2, timeout=20.0)


def test_no_case_crashes_hangs_exhausts_memory_or_loads_wrongly(report: Any) -> None:
    failures = [
        f"{f.outcome}: case {f.index} ({f.kind} on {f.base}): {f.mutation}\n  {f.message}" for f in report.failures
    ]
    replay = "replay one: .venv/bin/python bench/fuzz_bundles.py --seed 0 --case N (--save case.zip)"
    assert not failures, f"{len(failures)} failures ({replay}):\n" + "\n".join(failures[:12])
    assert report.outcomes["crash"] == report.outcomes["hang"] == 0
    assert report.cases == ROUNDS * len(report.by_kind)


def test_every_kind_is_tried_and_refused(fuzzer: ModuleType, report: Any) -> None:
    for kind in fuzzer.KINDS:
        counts = report.by_kind.get(kind, Counter())
        assert counts["tried"] == ROUNDS and counts["refused"] >= 1, (kind, dict(counts))


def test_a_case_is_the_same_bytes_in_every_run(fuzzer: ModuleType, bases: dict[str, bytes]) -> None:
    assert fuzzer.train_bases() == bases  # the base models themselves are reproducible
    parsed = {name: fuzzer.parse(data) for name, data in bases.items()}
    kinds = list(fuzzer.KINDS)
    for index in range(100, 100 + len(kinds)):
        case = fuzzer.plan_case(index, 7, parsed, kinds)
        assert case == fuzzer.plan_case(index, 7, parsed, kinds) and case.kind == kinds[index % len(kinds)]
        first, second = fuzzer.mutate(case, bases, parsed), fuzzer.mutate(case, bases, parsed)
        assert first == second and first.data != bases[case.base], case


def test_a_failure_makes_the_report_fail(fuzzer: ModuleType) -> None:
    report = fuzzer.Report(seed=0)
    case = fuzzer.Case(index=3, kind="tree_cycle", base="lightgbm-binary", seed=1)
    report.add(case, {"outcome": "refused", "message": "model: ...", "mutation": "m"})
    assert not report.failed
    report.add(case, {"outcome": "hang", "message": "no result within 10 s", "mutation": "m"})
    assert report.failed and [f.outcome for f in report.failures] == ["hang"]
    assert "tree_cycle" in report.table() and report.cases == 2
