import pandas as pd
import pytest

from reprotab.data.tables import atomic_path, detect_delimiter, frame_hash, read_table, write_table
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
        ("table.xlsx", "x", r"data\.path: must be a \.csv \(or compressed: \.csv\.gz .*\), \.parquet or \.pq file"),
        ("table.gz", "x", r"data\.path: must be a \.csv"),  # compressed, but not a CSV by its name
        (
            "latin1.csv",
            "ville,montant\nOrl\xe9ans,1\n".encode("latin-1"),
            r"data\.path: is not UTF-8 text \(byte 0xe9 .*\)\. Got '.*latin1\.csv'\. Re-save it as UTF-8, "
            r"e\.g\. `iconv -f latin1 -t utf-8",
        ),
    ],
)
def test_bad_input_files_are_user_errors(tmp_path, name, content, message):
    if isinstance(content, bytes):
        (tmp_path / name).write_bytes(content)
    elif content is not None:
        (tmp_path / name).write_text(content)
    with pytest.raises(UserError, match=message):
        read_table(tmp_path / name)


@pytest.mark.parametrize("name", ["t.csv.gz", "t.CSV.bz2", "t.csv.zip", "t.csv.xz", "t.pq"])
def test_compressed_csv_and_pq_are_read(tmp_path, name):
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    if name.endswith(".pq"):
        write_table(frame, tmp_path / name)
    else:
        frame.to_csv(tmp_path / name.lower(), index=False)  # pandas compresses by the (lower-case) name
        (tmp_path / name.lower()).rename(tmp_path / name)
    assert read_table(tmp_path / name).equals(frame)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("a;b;c", ";"), ("a,b,c", ","), ("a\tb", "\t"), ("a|b", "|"), ("only", ","), ('"x;y",b,c', ","), ("a;b,c", ",")],
)
def test_delimiter_is_the_most_frequent_outside_quotes(header, expected):
    assert detect_delimiter(header) == expected


def test_semicolon_csv_is_read_by_its_header(tmp_path):
    # European exports: ';' between fields, ',' as the decimal mark inside quoted text
    (tmp_path / "t.csv").write_text('id;city;note\n1;Lyon;"2,5"\n2;Nice;"3,0"\n', encoding="utf-8")
    frame = read_table(tmp_path / "t.csv")
    assert list(frame.columns) == ["id", "city", "note"]
    assert frame["city"].tolist() == ["Lyon", "Nice"]


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
