"""The service against its own contract, as real uvicorn processes on 127.0.0.1 with API keys.

Schemathesis generates requests for every endpoint from the live /openapi.json (bodies that fit the
schema and, for /predict and /feedback, bodies that do not), with generated noise on top (unknown
query parameters and headers). Each is sent twice: with the full key, and with a generated bad
credential (none, garbage, an unknown or tampered key, a real key under another scheme). Every answer
must be documented (status, content type, headers, body), never a 5xx, and every error the one
envelope with the version header. Then each refusal by the real process, counted in /metrics: 401,
403, 413, 422, 429, 503 (load shedding and the deadline); /docs; the refusal to listen beyond
loopback without keys; and no key in any log.
"""

from __future__ import annotations

import string
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from reprotab.serving.keys import add_key
from tests.helpers import base_params, free_port, request_rows, serve_command, server, server_env

pytest_plugins = ["tests.service_fixtures"]  # models
pytestmark = pytest.mark.integration

EXAMPLES = 1_000  # generated requests per endpoint, with the key and again without
ENDPOINTS = [
    ("/predict", "POST"),
    ("/feedback", "POST"),
    ("/metadata", "GET"),
    ("/metrics", "GET"),
    ("/health", "GET"),
    ("/ready", "GET"),
    ("/admin/reload", "POST"),  # the same model file each time: "unchanged", a millisecond
]
OPEN = {"/health", "/ready"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
FUZZ_LIMITS = {"rate_per_second": None, "max_rows": 100, "max_bytes": 200_000}
SERVERS: list[tuple[Path, Path]] = []  # (output, log directory) of every server this module started


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- servers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A key file (mode 0600) with a key per role; `monitor` only reads /metrics in the tests."""
    path = tmp_path_factory.mktemp("secrets") / "api-keys.json"
    scopes = {
        "operator": ["predict", "read", "admin"],
        "dashboard": ["read"],
        "scorer": ["predict"],
        "monitor": ["read"],
    }
    return path, {name: add_key(path, name, granted) for name, granted in scopes.items()}


@contextmanager
def serving(model: Path, key_file: Path, work: Path, *, host: str = "127.0.0.1", **limits: Any) -> Iterator[str]:
    """`reprotab serve` with the shipped params.yaml's `serve.limits` changed by `limits`, its output
    in work/server.out (a file: a pipe nobody reads would stall a server that logs a lot)."""
    work.mkdir(parents=True, exist_ok=True)
    params = base_params()
    params["serve"]["limits"].update(limits)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    extra = ["--keys", str(key_file), "--params", str(work / "params.yaml"), "--log-dir", str(work / "log")]
    output = work / "server.out"
    SERVERS.append((output, work / "log"))
    with server(serve_command(model, *extra, "--host", host), cwd=work, output=output) as url:
        yield url


@pytest.fixture(scope="module")
def fuzzed(models, keys, tmp_path_factory) -> Iterator[str]:
    """The server the generated requests go to: no rate limit, small body limits."""
    with serving(models[0], keys[0], tmp_path_factory.mktemp("fuzzed"), **FUZZ_LIMITS) as url:
        yield url


@pytest.fixture(scope="module")
def strict(models, keys, tmp_path_factory) -> Iterator[str]:
    """One request a second per key (2 at once), and a deadline no scoring can meet."""
    work = tmp_path_factory.mktemp("strict")
    with serving(models[0], keys[0], work, rate_per_second=1, burst=2, timeout_seconds=0.001) as url:
        yield url


@pytest.fixture(scope="module")
def single(models, keys, tmp_path_factory) -> Iterator[str]:
    """One work request at a time: the next is shed."""
    with serving(models[0], keys[0], tmp_path_factory.mktemp("single"), max_in_flight=1) as url:
        yield url


@pytest.fixture(scope="module")
def contract(fuzzed, keys) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzzed}/openapi.json", headers=bearer(keys[1]["operator"]))


def refusals(url: str, key: str) -> Counter[tuple[str, str]]:
    """reprotab_errors_total by (endpoint, kind), read from /metrics."""
    answer = httpx.get(f"{url}/metrics", headers=bearer(key), timeout=30)
    assert answer.status_code == 200, answer.text
    counts: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if sample.name == "reprotab_errors_total":
                counts[sample.labels["endpoint"], sample.labels["kind"]] += int(sample.value)
    return counts


def header(answer: httpx.Response | schemathesis.Response, name: str) -> str | None:
    if isinstance(answer, schemathesis.Response):  # lower-case names, a list of values each
        values = answer.headers.get(name.lower())
        return values[0] if values else None
    return answer.headers.get(name)


def assert_envelope(answer: httpx.Response | schemathesis.Response, version: str | None = None) -> dict[str, Any]:
    """An error answer is {"detail": [{"row", "field", "error"}, ...], "model_version"} with the header."""
    header_version = header(answer, "X-Model-Version")
    assert header_version, f"{answer.status_code} without X-Model-Version"
    body = orjson.loads(answer.content)
    assert set(body) == {"detail", "model_version"}, body
    assert body["model_version"] == header_version == (version or header_version), (body, header_version)
    assert isinstance(body["detail"], list) and body["detail"], body
    for entry in body["detail"]:
        assert set(entry) == {"row", "field", "error"}, entry
        assert isinstance(entry["error"], str) and entry["error"], entry
        assert entry["row"] is None or isinstance(entry["row"], int), entry
        assert entry["field"] is None or isinstance(entry["field"], str), entry
    return body


def retry_after(answer: httpx.Response) -> int:
    value = answer.headers.get("Retry-After", "")
    assert value.isdigit() and int(value) >= 1, f"Retry-After: {value!r}"
    return int(value)


# --- generated requests ----------------------------------------------------------------------

VISIBLE = st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_categories=("Cc", "Zs"))  # a header's bytes
TOKEN = st.text(VISIBLE, min_size=1, max_size=40)
SECRET = string.ascii_letters + string.digits + "-_"


@st.composite
def noise(draw: st.DrawFn) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and query parameters the contract does not name: they must change nothing."""
    headers = draw(
        st.dictionaries(
            st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=12).map("X-Fuzz-{}".format),
            TOKEN,
            max_size=3,
        )
    )
    for name, values in (
        ("Accept", st.sampled_from(["*/*", "application/json", "text/html", "text/plain", "application/xml"])),
        ("X-Request-Id", TOKEN),
        ("X-Forwarded-For", st.ip_addresses().map(str)),
        ("User-Agent", TOKEN),
        ("X-API-Key", TOKEN),  # with a valid bearer key too: the bearer key decides
    ):
        if draw(st.booleans()):
            headers[name] = draw(values)
    query = draw(
        st.dictionaries(
            st.text(string.ascii_letters + string.digits + "_.-", min_size=1, max_size=10),
            st.text(max_size=20),
            max_size=3,
        )
    )
    return headers, query


def tampered(key: str, where: int, by: int) -> str:
    """`key` with one character of its key id or secret changed."""
    prefix, key_id, secret = key.split("_", 2)
    alphabet = "0123456789abcdef" if where % 2 else SECRET
    part = key_id if where % 2 else secret
    at = where % len(part)
    changed = alphabet[(alphabet.index(part[at]) + 1 + by % (len(alphabet) - 1)) % len(alphabet)]
    part = part[:at] + changed + part[at + 1 :]
    return f"{prefix}_{part}_{secret}" if where % 2 else f"{prefix}_{key_id}_{part}"


def credentials(real: list[str]) -> st.SearchStrategy[dict[str, str]]:
    """What a client without a valid key may send: nothing, garbage, a well-formed unknown key, a
    real key with one character changed, or a real key under a scheme other than Bearer."""
    unknown = st.builds(
        "rtk_{}_{}".format,
        st.text("0123456789abcdef", min_size=8, max_size=8),
        st.text(SECRET, min_size=43, max_size=43),
    )
    changed = st.builds(tampered, st.sampled_from(real), st.integers(0, 200), st.integers(0, 100))
    value = st.one_of(TOKEN, unknown, changed)
    return st.one_of(
        st.just({}),
        value.map(lambda v: {"Authorization": f"Bearer {v}"}),
        value.map(lambda v: {"X-API-Key": v}),
        TOKEN.map(lambda v: {"Authorization": v}),
        st.builds(
            lambda scheme, key: {"Authorization": f"{scheme} {key}"},
            st.sampled_from(["Basic", "Token", "Digest", "ApiKey", "Bearer:"]),
            st.sampled_from(real),
        ),
    )


def counted(sent: Counter[str]) -> requests.Session:
    """A session that counts the answers it really got, by path."""
    session = requests.Session()
    session.hooks["response"].append(lambda response, *a, **k: sent.update([urlsplit(response.request.url).path]))
    return session


@pytest.mark.parametrize(("path", "method"), ENDPOINTS, ids=[p for p, _ in ENDPOINTS])
def test_generated_requests_get_documented_answers(fuzzed, contract, keys, path, method):
    operation = contract[path][method]
    strategy = operation.as_strategy(GenerationMode.POSITIVE)
    if "requestBody" in operation.definition.raw:  # bodies that break the schema too
        strategy = st.one_of(strategy, operation.as_strategy(GenerationMode.NEGATIVE))
    full = bearer(keys[1]["operator"])
    sent: dict[str, Counter[str]] = {"key": Counter(), "no key": Counter()}
    sessions = {mode: counted(sent[mode]) for mode in sent}
    statuses: dict[str, Counter[int]] = {mode: Counter() for mode in sent}
    generated: Counter[str] = Counter()  # bodies that fit the schema, and bodies that do not
    version = httpx.get(f"{fuzzed}/health").headers["X-Model-Version"]

    def exchange(case: schemathesis.Case, mode: str, headers: dict[str, str], query: dict[str, str]) -> None:
        answer = case.call(base_url=fuzzed, session=sessions[mode], headers=headers, params=query, timeout=60)
        statuses[mode][answer.status_code] += 1
        case.validate_response(answer, checks=CHECKS, headers=headers)
        assert header(answer, "X-Model-Version") == version
        if answer.status_code >= 400:
            assert_envelope(answer, version)
        if mode == "no key" and path not in OPEN:
            assert answer.status_code == 401, answer.content
            assert (header(answer, "WWW-Authenticate") or "").startswith("Bearer"), answer.headers

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(case=strategy, extra=noise(), credential=credentials(list(keys[1].values())))
    def fuzz(case: schemathesis.Case, extra: tuple[dict[str, str], dict[str, str]], credential: dict[str, str]):
        headers, query = extra
        assert case.meta is not None
        generated[case.meta.generation.mode.value] += 1
        exchange(case, "key", {**headers, **full}, query)
        without = {k: v for k, v in headers.items() if k != "X-API-Key"}
        exchange(case, "no key", {**without, **credential}, query)

    try:
        fuzz()
    finally:
        for mode in sent:
            print(f"{method} {path} {mode}: {sent[mode][path]} requests, statuses {dict(statuses[mode])}")
        print(f"{method} {path} generated: {dict(generated)}")
    for mode in sent:
        assert sent[mode][path] >= EXAMPLES, (mode, sent[mode])
        assert statuses[mode].total() == sent[mode][path]
    assert max(statuses["key"]) < 500 and max(statuses["no key"]) < 500
    if path not in OPEN:
        assert set(statuses["no key"]) == {401}
    if path in ("/predict", "/feedback"):
        assert {200, 422} <= set(statuses["key"]), statuses["key"]  # accepted and refused bodies both
        assert min(generated["positive"], generated["negative"]) >= EXAMPLES // 10, generated
    else:
        assert set(statuses["key"]) == {200}


# --- each refusal, by the real process ------------------------------------------------------


def test_no_key_or_an_unknown_one_is_401_with_a_challenge(fuzzed, keys):
    before = refusals(fuzzed, keys[1]["monitor"])
    unknown = "rtk_00000000_" + "A" * 43
    for headers in ({}, bearer(unknown), {"X-API-Key": unknown}, bearer(tampered(keys[1]["operator"], 0, 0))):
        answer = httpx.get(f"{fuzzed}/metadata", headers=headers)
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="reprotab"'
        assert "Authorization: Bearer" in assert_envelope(answer)["detail"][0]["error"]
    assert refusals(fuzzed, keys[1]["monitor"]) - before == Counter({("/metadata", "unauthorized"): 4})


def test_a_key_without_the_scope_is_403(fuzzed, keys):
    _, made = keys
    before = refusals(fuzzed, made["monitor"])
    cases = [
        ("POST", "/predict", "dashboard", "predict"),
        ("POST", "/feedback", "dashboard", "predict"),
        ("POST", "/admin/reload", "scorer", "admin"),
        ("GET", "/metadata", "scorer", "read"),
    ]
    for method, path, name, scope in cases:
        answer = httpx.request(method, f"{fuzzed}{path}", headers=bearer(made[name]), json={"rows": request_rows(1)})
        assert answer.status_code == 403, answer.text
        assert "WWW-Authenticate" not in answer.headers
        assert (
            assert_envelope(answer)["detail"][0]["error"] == f"key '{name}' lacks the '{scope}' scope this path needs"
        )
    expected = Counter({(path, "forbidden"): 1 for _, path, _, _ in cases})
    assert refusals(fuzzed, made["monitor"]) - before == expected


def test_too_many_rows_or_bytes_is_413(fuzzed, keys):
    full = bearer(keys[1]["operator"])
    limits = httpx.get(f"{fuzzed}/metadata", headers=full).json()["limits"]
    assert (limits["max_rows"], limits["max_bytes"]) == (FUZZ_LIMITS["max_rows"], FUZZ_LIMITS["max_bytes"])
    before = refusals(fuzzed, keys[1]["monitor"])
    rows = request_rows(limits["max_rows"] + 1)
    labels = [{"id": f"C-{i}", "label": True} for i in range(limits["max_rows"] + 1)]
    big = orjson.dumps({"rows": [{"tenure_months": "1" * limits["max_bytes"]}]})

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted as the body arrives
        yield from (big[i : i + 65_536] for i in range(0, len(big), 65_536))

    answers = {
        "rows": httpx.post(f"{fuzzed}/predict", headers=full, json={"rows": rows}),
        "labels": httpx.post(f"{fuzzed}/feedback", headers=full, json={"labels": labels}),
        "declared bytes": httpx.post(f"{fuzzed}/predict", headers=full, content=big),
        "streamed bytes": httpx.post(f"{fuzzed}/predict", headers=full, content=chunks()),
    }
    for what, answer in answers.items():
        assert answer.status_code == 413, (what, answer.text)
        assert_envelope(answer)
    assert "101 rows exceed the limit of 100" in answers["rows"].text
    assert f"bytes exceeds the limit of {limits['max_bytes']}" in answers["declared bytes"].text
    assert refusals(fuzzed, keys[1]["monitor"]) - before == Counter(
        {("/predict", "too_large"): 3, ("/feedback", "too_large"): 1}
    )


def test_bad_rows_and_malformed_or_deeply_nested_json_are_422(fuzzed, keys):
    full = bearer(keys[1]["operator"])
    before = refusals(fuzzed, keys[1]["monitor"])
    row = request_rows(1)[0]
    answer = httpx.post(f"{fuzzed}/predict", headers=full, json={"rows": [{**row, "tenure_months": [1], "extra": 1}]})
    assert answer.status_code == 422
    assert {(e["row"], e["field"]) for e in assert_envelope(answer)["detail"]} == {(0, "tenure_months"), (0, "extra")}
    deep = 5_000
    bodies = {
        "malformed": b'{"rows": [',
        "nested arrays": b"[" * deep + b"]" * deep,
        "nested objects": b'{"a":' * deep + b"1" + b"}" * deep,
        "nested in a row": b'{"rows": [{"tenure_months": ' + b"[" * deep + b"]" * deep + b"}]}",
        "nested with NaN": b'{"rows": [NaN, ' + b"[" * deep + b"]" * deep + b"]}",  # Python's parser, not orjson
        "lone surrogate": b'{"rows": [{"region": "\\ud800"}], "request_id": NaN}',
        "encoded surrogate": b'{"rows": [{"region": "\xed\xa0\x80"}]}',
        "not UTF-8": b'{"rows": [{"region": "\xff"}]}',
    }
    for path in ("/predict", "/feedback"):
        for what, body in bodies.items():
            answer = httpx.post(f"{fuzzed}{path}", headers=full, content=body)
            assert answer.status_code == 422, (path, what, answer.status_code, answer.text[:300])
            assert_envelope(answer)
    refused = refusals(fuzzed, keys[1]["monitor"]) - before
    assert refused["/predict", "validation"] >= 1
    assert refused["/predict", "malformed"] + refused["/predict", "validation"] == 1 + len(bodies)
    assert refused["/feedback", "malformed"] + refused["/feedback", "validation"] == len(bodies)
    assert not {kind for (_, kind) in refused} - {"malformed", "validation"}


def test_a_request_id_must_be_short_text(fuzzed, keys):
    full = bearer(keys[1]["operator"])
    rows = request_rows(1)
    for request_id, status in (("r" * 200, 200), ("r" * 201, 422), (17, 422), (True, 422), ("", 200)):
        answer = httpx.post(f"{fuzzed}/predict", headers=full, json={"rows": rows, "request_id": request_id})
        assert answer.status_code == status, (request_id, answer.text)
        if status == 200:
            assert answer.json()["request_id"] == request_id
        else:
            assert assert_envelope(answer)["detail"][0]["field"] == "request_id"


def test_past_the_rate_limit_is_429_with_retry_after(strict, keys):
    _, made = keys
    answers = [httpx.get(f"{strict}/metadata", headers=bearer(made["dashboard"])) for _ in range(5)]
    statuses = [a.status_code for a in answers]
    assert statuses[:2] == [200, 200] and 429 in statuses and set(statuses) <= {200, 429}, statuses
    limited = [a for a in answers if a.status_code == 429]
    for answer in limited:
        assert retry_after(answer) >= 1
        assert "more than 1 requests a second" in assert_envelope(answer)["detail"][0]["error"]
    assert httpx.get(f"{strict}/metadata", headers=bearer(made["operator"])).status_code == 200  # a bucket per key
    assert refusals(strict, made["monitor"]) == Counter({("/metadata", "rate_limited"): len(limited)})


def test_past_the_deadline_is_503(strict, keys):
    _, made = keys
    answer = httpx.post(
        f"{strict}/predict", headers=bearer(made["scorer"]), json={"rows": request_rows(400)}, timeout=60
    )
    assert answer.status_code == 503, answer.text
    error = assert_envelope(answer)["detail"][0]["error"]  # while scoring, or already while the body arrived
    assert error in ("not answered within 0.001 s", "waited past the deadline before it could start"), error
    counted = refusals(strict, made["monitor"])  # once: the key's bucket holds 2 (the other test took one)
    assert {endpoint: n for (endpoint, kind), n in counted.items() if endpoint != "/metadata"} == {"/predict": 1}
    assert counted["/predict", "timeout"] == 1


def test_over_max_in_flight_is_shed_with_503_and_nothing_is_lost(single, keys):
    _, made = keys
    body = orjson.dumps({"rows": request_rows(2_000)})
    clients, answers, failures = 8, [], []
    lock = threading.Lock()
    for _ in range(3):  # rounds until the requests overlapped; the first almost always does
        start = threading.Barrier(clients)

        def client(start: threading.Barrier) -> None:
            start.wait()
            try:
                answer = httpx.post(
                    f"{single}/predict",
                    headers={**bearer(made["scorer"]), "content-type": "application/json"},
                    content=body,
                    timeout=120,
                )
            except httpx.HTTPError as exc:
                with lock:
                    failures.append(repr(exc))
                return
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=client, args=(start,)) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
        if any(a.status_code == 503 for a in answers):
            break
    assert not failures
    assert len(answers) % clients == 0 and answers, "a request was not answered"
    statuses = Counter(a.status_code for a in answers)
    assert set(statuses) == {200, 503}, statuses
    for answer in answers:
        if answer.status_code == 503:
            assert retry_after(answer) == 1
            assert "its limit: try again shortly" in assert_envelope(answer)["detail"][0]["error"]
        else:
            assert len(answer.json()["predictions"]) == 2_000
    assert refusals(single, made["monitor"]) == Counter({("/predict", "overloaded"): statuses[503]})


# --- the contract itself ---------------------------------------------------------------------


def test_docs_show_the_contract(fuzzed, keys):
    read = bearer(keys[1]["dashboard"])
    page = httpx.get(f"{fuzzed}/docs", headers=read)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in page.text and "swagger" in page.text.lower()
    assert httpx.get(f"{fuzzed}/docs").status_code == 401
    assert httpx.get(f"{fuzzed}/openapi.json").status_code == 401


def test_the_contract_describes_every_feature_and_the_id_column(fuzzed, keys):
    read = bearer(keys[1]["dashboard"])
    document = httpx.get(f"{fuzzed}/openapi.json", headers=read).json()
    metadata = httpx.get(f"{fuzzed}/metadata", headers=read).json()
    schemas = document["components"]["schemas"]

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        return schemas[node["$ref"].rsplit("/", 1)[-1]] if "$ref" in node else node

    request = resolve(document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"])
    assert request["required"] == ["rows"] and request["additionalProperties"] is False
    row = resolve(request["properties"]["rows"]["items"])
    assert row["additionalProperties"] is False
    features = {f["name"]: f["type"] for f in metadata["features"]}
    assert set(row["required"]) == set(features)
    id_column = metadata["id_column"]
    assert id_column and id_column not in features
    assert set(row["properties"]) == {*features, id_column}
    for name, kind in features.items():
        types = {option.get("type") for option in row["properties"][name]["anyOf"]}
        if kind == "numeric":
            assert types == {"number", "boolean", "string", "null"}, name
            assert row["properties"][name]["description"].startswith("numeric feature")
        else:
            assert types == {"string", "integer", "boolean", "null"}, name
            assert row["properties"][name]["description"].startswith("categorical feature")
    assert {option.get("type") for option in row["properties"][id_column]["anyOf"]} == {"string", "integer", "null"}
    assert document["info"]["version"] == metadata["model_version"]


# --- beyond loopback -------------------------------------------------------------------------


def test_a_network_address_without_keys_is_refused_before_listening(models, tmp_path):
    port = free_port()
    command = [a.replace("{port}", str(port)) for a in serve_command(models[0], "--host", "0.0.0.0")]
    result = subprocess.run(command, cwd=tmp_path, env=server_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "--host: is reachable from other machines, so the service needs API keys" in result.stderr
    assert "reprotab serve keys add NAME --scope predict" in result.stderr and "--keys" in result.stderr
    assert "listening on" not in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "secrets").exists()


def test_a_network_address_with_keys_serves(models, keys, tmp_path):
    with serving(models[0], keys[0], tmp_path / "any", host="0.0.0.0") as url:
        assert httpx.get(f"{url}/metadata").status_code == 401
        assert httpx.get(f"{url}/metadata", headers=bearer(keys[1]["dashboard"])).json()["auth"] == {"keys": 4}
    assert "listening on http://0.0.0.0:" in (tmp_path / "any" / "server.out").read_text()


# --- keys stay secret (last: it reads what every server of this module wrote) ----------------


def test_no_key_reaches_a_log(fuzzed, keys):
    _, made = keys
    answer = httpx.post(f"{fuzzed}/predict", headers=bearer(made["scorer"]), json={"rows": request_rows(2)})
    request_id = answer.json()["request_id"]
    label = {"request_id": request_id, "position": 0, "label": True}
    assert httpx.post(f"{fuzzed}/feedback", headers=bearer(made["scorer"]), json={"labels": [label]}).status_code == 200
    secrets = [*made.values(), *(key.split("_", 2)[2] for key in made.values())]  # whole, and the secret alone
    files = [output for output, _ in SERVERS]
    files += [path for _, logs in SERVERS if logs.is_dir() for path in logs.rglob("*") if path.is_file()]
    assert len(files) > len(SERVERS), "no log files were written"
    for path in files:
        text = path.read_bytes().decode("utf-8", errors="replace")
        assert not [s for s in secrets if s in text], f"a key in {path}"
    feedback = [p for p in files if p.parent.name == "feedback"]
    assert any(b'"key":"scorer"' in p.read_bytes() for p in feedback), "the label's key is named"
