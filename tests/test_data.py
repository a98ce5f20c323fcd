import pandas as pd
import pytest

from reprotab.data import atomic_path, frame_hash, read_table, write_table
from reprotab.errors import UserError


def test_reads_csv_and_parquet(tmp_path):
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    write_table(frame, tmp_path / "t.parquet")
    assert read_table(tmp_path / "t.csv").equals(read_table(tmp_path / "t.parquet"))


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("missing.csv", None, r"data\.path: file not found\. Got '.*missing\.csv'\. Point data\.path"),
        ("empty.csv", "", r"data\.path: file is empty"),
        ("broken.parquet", "not parquet", r"data\.path: cannot be read as parquet"),
        ("header.csv", "a,b\n", r"data\.path: has no rows"),
        ("table.xlsx", "x", r"data\.path: must be a \.csv or \.parquet file"),
    ],
)
def test_bad_input_files_are_user_errors(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_text(content)
    with pytest.raises(UserError, match=message):
        read_table(tmp_path / name)


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "model.bin"
    target.write_text("good")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_frame_hash_depends_on_values_and_columns():
    frame = pd.DataFrame({"a": [1, 2]})
    assert frame_hash(frame) == frame_hash(frame.copy())
    assert frame_hash(frame) != frame_hash(pd.DataFrame({"a": [1, 3]}))
    assert frame_hash(frame) != frame_hash(pd.DataFrame({"b": [1, 2]}))
