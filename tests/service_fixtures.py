"""The service's fixtures, shared by its in-process tests (tests/unit/serving/test_service.py) and
its real-process tests (tests/integration/test_service.py): two small trained models, each
resolved as the service serves it, and an in-process client of the champion."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from reprotab.serving.routing import Served
from reprotab.serving.scoring import resolve_model
from reprotab.serving.service import ServiceConfig, create_app
from tests.helpers import train_model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return train_model(root / "champion", seed=1), train_model(root / "challenger", seed=2)


@pytest.fixture(scope="module")
def champion(models):
    return Served(*resolve_model(models[0]))


@pytest.fixture(scope="module")
def challenger(models):
    return Served(*resolve_model(models[1]))


@pytest.fixture
def client(champion, tmp_path):
    config = ServiceConfig(log_dir=str(tmp_path / "log"), max_rows=50, max_bytes=200_000)
    with TestClient(create_app(champion, config=config)) as test_client:
        yield test_client
