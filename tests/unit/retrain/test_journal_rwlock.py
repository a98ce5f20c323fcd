"""A dvc killed while writing its stage lock leaves `.dvc/tmp/rwlock` cut; the rollback removes it
(every later dvc command refused the repository with "JSON structure is corrupted")."""

from __future__ import annotations

from reprotab.retrain.journal import repair_dvc_rwlock


def test_a_cut_rwlock_is_removed_and_a_sound_one_kept(tmp_path):
    rwlock = tmp_path / ".dvc" / "tmp" / "rwlock"
    assert not repair_dvc_rwlock(tmp_path)  # none: nothing to do
    rwlock.parent.mkdir(parents=True)
    rwlock.write_text('{"read": {}, "write": {}}')
    assert not repair_dvc_rwlock(tmp_path) and rwlock.is_file()
    for cut in ("", '{"read": {"data/prepared/train.parquet": '):
        rwlock.write_text(cut)
        assert repair_dvc_rwlock(tmp_path) and not rwlock.exists()
