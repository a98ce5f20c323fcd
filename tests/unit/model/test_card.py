"""The model card has one writer and one reader, and refuses a file that is not a card."""

from __future__ import annotations

import json

import pytest

from reprotab.errors import UserError
from reprotab.model.card import ModelCard
from tests.helpers import MODEL_CARD

CARD = MODEL_CARD


def test_a_card_round_trips_and_is_found_beside_its_model(tmp_path):
    card = ModelCard.from_dict(CARD)
    card.write(tmp_path / "model.json")
    assert ModelCard.read(tmp_path / "model.json") == card
    assert ModelCard.beside(tmp_path / "model.zip") == card
    assert json.loads((tmp_path / "model.json").read_text()) == CARD  # absent optional fields stay absent
    with pytest.raises(AttributeError):
        card.model = "xgboost"  # type: ignore[misc]  # frozen


def test_a_file_that_is_not_a_card_is_one_message_or_none_beside_a_model(tmp_path):
    partial = {k: v for k, v in CARD.items() if k not in ("task", "training_rows")}
    with pytest.raises(UserError, match=r"model\.json: is not a model card: missing task, training_rows\..*Re-run"):
        ModelCard.from_dict(partial, where="model.json")
    (tmp_path / "model.json").write_text(json.dumps(partial))
    assert ModelCard.beside(tmp_path / "model.zip") is None  # scoring still works without one
    assert ModelCard.beside(tmp_path / "elsewhere" / "model.zip") is None
    assert ModelCard.beside(None) is None
    with pytest.raises(UserError, match=r"model\.json: is not a model card: not a JSON object\. Got 'list'"):
        ModelCard.from_dict([1, 2], where="model.json")
    (tmp_path / "candidate.json").write_text(json.dumps(CARD))  # a model's card shares its name
    assert ModelCard.beside(tmp_path / "candidate.joblib") == ModelCard.from_dict(CARD)
