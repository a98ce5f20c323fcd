"""API keys (reprotab/serving/keys.py): made once, stored only as salted hashes in a private file,
checked per request, and every bad key file refused with one message."""

from __future__ import annotations

import json
import os
import re
import stat
import sys

import pytest

from reprotab.errors import UserError
from reprotab.serving.keys import DEFAULT_FILE, SCOPES, Key, KeyRing, add_key, list_keys, main, remove_key

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
KEY = re.compile(r"rtk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")


@pytest.fixture
def keyfile(tmp_path):
    return tmp_path / "secrets" / "api-keys.json"


def write(path, document, mode=0o600):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    path.chmod(mode)
    return path


def stored(keyfile):
    return json.loads(keyfile.read_text())


# --- making and checking keys ---------------------------------------------------------------


def test_a_made_key_loads_and_authenticates_as_its_owner(keyfile):
    key = add_key(keyfile, "ci", ["predict"])
    assert KEY.fullmatch(key)
    ring = KeyRing.load(keyfile)
    assert len(ring) == 1
    assert ring.authenticate(key) == Key("ci", key.split("_")[1], frozenset({"predict"}))


def test_the_file_keeps_a_salted_hash_never_the_secret(keyfile):
    key = add_key(keyfile, "ci", ["predict", "read"])
    secret = key[len("rtk_") + 9 :]
    text = keyfile.read_text()
    assert secret not in text
    (entry,) = stored(keyfile)["keys"]
    assert stored(keyfile)["format"] == 1
    assert set(entry) == {"name", "key_id", "salt", "sha256", "scopes", "created"}
    assert entry["scopes"] == ["predict", "read"]
    assert len(bytes.fromhex(entry["salt"])) == 16
    assert entry["created"].endswith("+00:00")


def test_two_keys_are_told_apart(keyfile):
    first = add_key(keyfile, "ci", ["predict"])
    second = add_key(keyfile, "dashboard", ["read"])
    ring = KeyRing.load(keyfile)
    assert len(ring) == 2
    assert ring.authenticate(first).name == "ci"
    assert ring.authenticate(second).name == "dashboard"


def test_wrong_unknown_malformed_or_missing_keys_are_refused(keyfile):
    key = add_key(keyfile, "ci", ["predict"])
    ring = KeyRing.load(keyfile)
    key_id, secret = key[4:12], key[13:]
    other_secret = ("A" if secret[0] != "A" else "B") + secret[1:]
    unknown_id = "00000000" if key_id != "00000000" else "11111111"
    for presented in (
        f"rtk_{key_id}_{other_secret}",  # wrong secret
        f"rtk_{unknown_id}_{secret}",  # no such key id
        key[:-1],  # one character short
        key + "x",
        key.upper(),
        f"xyz_{key_id}_{secret}",
        f"rtk_{key_id}{secret}",
        f" {key}",
        "",
        None,
    ):
        assert ring.authenticate(presented) is None, presented


def test_an_unknown_key_id_is_hashed_as_a_known_one_is(keyfile, monkeypatch):
    """The time taken must not tell which key ids exist: an unknown id costs a hash and a comparison too."""
    from reprotab.serving import keys

    key = add_key(keyfile, "ci", ["predict"])
    ring = KeyRing.load(keyfile)
    calls = []
    real = keys.hmac.compare_digest
    monkeypatch.setattr(keys.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    assert ring.authenticate("rtk_" + ("0" * 8 if key[4:12] != "0" * 8 else "1" * 8) + key[12:]) is None
    assert calls == [1]


def test_scopes_are_explicit_and_admin_implies_read_only():
    admin = Key("ops", "0123abcd", frozenset({"admin"}))
    assert admin.allows("admin") and admin.allows("read")
    assert not admin.allows("predict")
    predict = Key("ci", "0123abcd", frozenset({"predict"}))
    assert predict.allows("predict")
    assert not predict.allows("read") and not predict.allows("admin")
    reader = Key("dash", "0123abcd", frozenset({"read"}))
    assert reader.allows("read") and not reader.allows("admin")
    assert not predict.allows("anything")


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "expected"),
    [
        ("Bearer rtk_k", None, "rtk_k"),
        ("bearer  rtk_k ", None, "rtk_k"),
        (None, "rtk_k", "rtk_k"),
        ("Bearer rtk_a", "rtk_b", "rtk_a"),
        ("Basic dXNlcjpwdw==", "rtk_b", "rtk_b"),
        ("Basic dXNlcjpwdw==", None, None),
        ("Bearer", None, None),
        ("Bearer ", " ", None),
        ("", "", None),
        (None, None, None),
    ],
)
def test_the_key_comes_from_a_bearer_header_or_x_api_key(authorization, x_api_key, expected):
    assert KeyRing.from_header(authorization, x_api_key) == expected


# --- the file -------------------------------------------------------------------------------


@posix_only
def test_the_file_and_its_rewrites_are_private(keyfile):
    add_key(keyfile, "ci", ["predict"])
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    add_key(keyfile, "dashboard", ["read"])
    remove_key(keyfile, "ci")
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    assert [p.name for p in keyfile.parent.iterdir()] == ["api-keys.json"]  # no temporary file left


@posix_only
def test_a_file_others_can_read_is_refused_with_chmod(keyfile):
    add_key(keyfile, "ci", ["predict"])
    keyfile.chmod(0o644)
    where = re.escape(str(keyfile))
    message = (
        rf"{where}: must be readable and writable by its owner only .*Got 'mode 0644'\. Run `chmod 600 {where}`\.$"
    )
    for act in (lambda: KeyRing.load(keyfile), lambda: add_key(keyfile, "other", ["read"]), lambda: list_keys(keyfile)):
        with pytest.raises(UserError, match=message):
            act()
    keyfile.chmod(0o640)
    with pytest.raises(UserError, match=r"Got 'mode 0640'"):
        KeyRing.load(keyfile)


def test_a_missing_file_names_the_command_that_makes_one(keyfile):
    with pytest.raises(
        UserError,
        match=rf"{re.escape(str(keyfile))}: no API key file here\. Make the first key with "
        rf"`reprotab serve keys add NAME --scope predict --file {re.escape(str(keyfile))}`\.$",
    ):
        KeyRing.load(keyfile)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"is not a readable JSON key file\. Got 'Expecting property name"),
        ([], r"""must hold \{"format": 1, "keys": \[\.\.\.\]\}\. Got 'list'"""),
        ({"keys": []}, r"must hold .*Got \['keys'\]"),
        ({"format": 1, "keys": {}}, r"must hold .*Got \['format', 'keys'\]"),
        ({"format": 2, "keys": []}, r"has key file format 2; this version reads format 1\. Use the version"),
        ({"format": 1, "keys": ["x"]}, r"keys\[0\]: must have exactly the fields name, key_id, salt, sha256, scopes"),
        ({"format": 1, "keys": [{"name": "ci"}]}, r"keys\[0\]: must have exactly the fields .*Got \['name'\]"),
    ],
)
def test_unreadable_or_foreign_files_are_refused(keyfile, content, message):
    write(keyfile, content)
    with pytest.raises(UserError, match=message):
        KeyRing.load(keyfile)


def test_a_directory_is_not_a_key_file(tmp_path):
    with pytest.raises(UserError, match=r"must be a key file\. Got 'a directory'"):
        KeyRing.load(tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scopes": ["predict", "wirte"]}, r"keys\[1\]\.scopes: must be one of predict, read, admin\. Got 'wirte'\."),
        ({"scopes": ["predcit"]}, r"Got 'predcit'\. Did you mean 'predict'\?"),
        ({"scopes": []}, r"keys\[1\]\.scopes: must be a non-empty list\. Got \[\]"),
        ({"name": "ci"}, r"each key's name must be unique\. Got \"'ci' twice\"\. Remove one of them\.$"),
        ({"key_id": "KEYID"}, r"keys\[1\]\.key_id: must match \[0-9a-f\]\{8\}\. Got 'KEYID'"),
        ({"sha256": "00"}, r"keys\[1\]\.sha256: must match"),
        ({"name": "a b"}, r"keys\[1\]\.name: must match"),
        ({"created": 3}, r"keys\[1\]\.created: must be an ISO time\. Got 3"),
    ],
)
def test_a_bad_entry_is_refused_with_where_it_is(keyfile, change, message):
    add_key(keyfile, "ci", ["predict"])
    add_key(keyfile, "dashboard", ["read"])
    document = stored(keyfile)
    document["keys"][1].update(change)
    write(keyfile, document)
    with pytest.raises(UserError, match=message):
        KeyRing.load(keyfile)


def test_a_duplicate_key_id_is_refused(keyfile):
    add_key(keyfile, "ci", ["predict"])
    add_key(keyfile, "dashboard", ["read"])
    document = stored(keyfile)
    document["keys"][1]["key_id"] = document["keys"][0]["key_id"]
    write(keyfile, document)
    with pytest.raises(UserError, match=r"each key's key id must be unique"):
        KeyRing.load(keyfile)


def test_an_empty_ring_loads_and_lets_no_one_in(keyfile):
    key = add_key(keyfile, "ci", ["predict"])
    remove_key(keyfile, "ci")
    ring = KeyRing.load(keyfile)
    assert len(ring) == 0
    assert ring.authenticate(key) is None


# --- adding, removing, listing ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "scopes", "message"),
    [
        ("ci", [], r"--scope: a key needs at least one scope\. Give one of predict, read, admin\.$"),
        (
            "ci",
            ["predict", "raed"],
            r"--scope: must be one of predict, read, admin\. Got 'raed'\. Did you mean 'read'\?",
        ),
        ("ci", ["everything"], r"--scope: must be one of predict, read, admin\. Got 'everything'\.$"),
        ("", ["predict"], r"key name: must be 1 to 64 letters, digits, dots, dashes or underscores\. Got ''"),
        ("a b", ["predict"], r"key name: must be 1 to 64 .*Got 'a b'"),
        ("x" * 65, ["predict"], r"key name: must be 1 to 64"),
        ("ci/../x", ["predict"], r"key name: must be 1 to 64"),
    ],
)
def test_a_bad_new_key_is_refused_and_nothing_is_written(keyfile, name, scopes, message):
    with pytest.raises(UserError, match=message):
        add_key(keyfile, name, scopes)
    assert not keyfile.exists()


def test_a_name_already_taken_is_refused(keyfile):
    add_key(keyfile, "ci", ["predict"])
    before = keyfile.read_text()
    with pytest.raises(UserError, match=r"key name: a key of this name is already in .*Got 'ci'\. Remove it first"):
        add_key(keyfile, "ci", ["read"])
    assert keyfile.read_text() == before


def test_a_removed_key_no_longer_authenticates_and_the_others_still_do(keyfile):
    ci = add_key(keyfile, "ci", ["predict"])
    dashboard = add_key(keyfile, "dashboard", ["read"])
    remove_key(keyfile, "ci")
    ring = KeyRing.load(keyfile)
    assert ring.authenticate(ci) is None
    assert ring.authenticate(dashboard).name == "dashboard"
    with pytest.raises(UserError, match=r"must be one of dashboard\. Got 'ci'"):
        remove_key(keyfile, "ci")
    with pytest.raises(UserError, match=r"Got 'dashbaord'\. Did you mean 'dashboard'\?"):
        remove_key(keyfile, "dashbaord")
    remove_key(keyfile, "dashboard")
    with pytest.raises(UserError, match=r"holds no keys"):
        remove_key(keyfile, "dashboard")


def test_listing_shows_no_hash_salt_or_secret(keyfile):
    key = add_key(keyfile, "ci", ["read", "predict"])
    rows = list_keys(keyfile)
    assert rows == [{"name": "ci", "key_id": key[4:12], "scopes": ["predict", "read"], "created": rows[0]["created"]}]
    entry = stored(keyfile)["keys"][0]
    text = json.dumps(rows)
    assert entry["sha256"] not in text and entry["salt"] not in text and key[13:] not in text


# --- the command ------------------------------------------------------------------------------


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # stage_main writes reports/logs/ here
    return tmp_path


def test_add_prints_the_key_once_on_stdout_and_how_to_use_it_on_stderr(here, capsys):
    main(["add", "ci", "--scope", "predict", "--scope", "read"])
    out, err = capsys.readouterr()
    key = out.strip()
    assert KEY.fullmatch(key)
    assert "cannot be shown again" in err and 'curl -H "Authorization: Bearer $KEY"' in err
    assert key not in err
    assert KeyRing.load(here / DEFAULT_FILE).authenticate(key).scopes == frozenset({"predict", "read"})
    assert key not in (here / "reports" / "logs" / "serve-keys.log").read_text()  # never logged


def test_list_and_remove_through_the_command(here, capsys):
    keyfile = here / "elsewhere" / "keys.json"
    main(["add", "ci", "--scope", "predict", "--file", str(keyfile)])
    key = capsys.readouterr().out.strip()
    main(["list", "--file", str(keyfile)])
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["name", "key_id", "scopes", "created"]
    assert out.splitlines()[1].split()[:3] == ["ci", key[4:12], "predict"]
    assert key[13:] not in out
    main(["remove", "ci", "--file", str(keyfile)])
    assert "removed key 'ci'" in capsys.readouterr().out
    main(["list", "--file", str(keyfile)])
    assert capsys.readouterr().out.startswith("no keys in")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "ci"], "--scope: a key needs at least one scope"),
        (["add", "ci", "--scope", "predcit"], "Did you mean 'predict'?"),
        (["add", "a b", "--scope", "predict"], "key name: must be 1 to 64"),
        (["list"], "no API key file here"),
        (["remove", "ci"], "no API key file here"),
        (["add"], "the following arguments are required: name"),
        (["show"], "invalid choice: 'show'"),
        (["add", "ci", "--scope", "predict", "--key", "rtk_x"], "unrecognized arguments: --key rtk_x"),
    ],
)
def test_bad_input_exits_2_with_one_message(here, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not (here / DEFAULT_FILE).exists()


def test_scopes_are_the_documented_three():
    assert SCOPES == ("predict", "read", "admin")
    assert sys.modules["reprotab.serving.keys"].DEFAULT_FILE.as_posix() == "secrets/api-keys.json"


def test_serve_needs_keys_off_loopback_unless_told_otherwise(tmp_path, monkeypatch):
    """`reprotab serve --host` beyond loopback refuses to start without keys (or with a file that
    holds none); `--allow-no-keys` is the explicit way round; loopback needs none."""
    from reprotab.serving.service import is_loopback, load_keys

    monkeypatch.chdir(tmp_path)  # no default key file here
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("example.org")
    assert load_keys(None, "127.0.0.1") is None
    with pytest.raises(UserError, match=r"needs API keys.*reprotab serve keys add NAME --scope predict"):
        load_keys(None, "0.0.0.0")
    empty = tmp_path / "empty.json"
    add_key(empty, "gone", ["predict"])
    remove_key(empty, "gone")
    with pytest.raises(UserError, match="needs API keys"):
        load_keys(str(empty), "0.0.0.0")
    assert load_keys(None, "0.0.0.0", allow_no_keys=True) is None
    assert load_keys(str(empty), "0.0.0.0", allow_no_keys=True) is None  # served without keys, as asked
    keyed = tmp_path / "keys.json"
    add_key(keyed, "app", ["predict"])
    assert len(load_keys(str(keyed), "0.0.0.0")) == 1  # type: ignore[arg-type]
