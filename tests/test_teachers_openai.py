"""The openai backend against a local fault-injecting server: retries, timeouts, bad answers, concurrency."""

from __future__ import annotations

import pytest
from fault_server import FaultServer

from conf_profile.config.teachers import teacher_spec
from conf_profile.errors import ConfProfileError
from conf_profile.schema import TEACHER_OUTPUT_SCHEMA
from conf_profile.taxonomy import load_taxonomy
from conf_profile.teachers.backends import make_teacher
from conf_profile.teachers.backends.openai_chat import OpenAITeacher

TAX = load_taxonomy()
A = len(TAX.names)

PLANS = {
    "healthy": ["ok"],
    "retry_ok": ["500", "ok"],  # a healthy answer after one retry
    "flaky": ["503", "drop", "ok"],  # two different transport faults, then fine
    "envelope": ["envelope", "ok"],
    "slow": ["slow"],  # always beyond the timeout
    "dead": ["500"],
    "busy": ["429"],
    "bad_request": ["400"],
    "badjson": ["badjson"],
    "oot": ["oot"],
    "short": ["short"],
}


def spec(url: str, **kw):
    base = dict(name="remote", backend="openai", model="test-model", base_url=url, samples=2, temperature=0.7,
                max_concurrency=3, timeout_s=0.4, max_retries=2, retry_backoff_s=0.01, seed=1)
    base.update(kw)
    return teacher_spec(**base)


def doc(key: str) -> str:
    return f"## profile\nnickname: ⟦x⟧\nkey: {key}\n## comments\n- ⟦hello⟧"


@pytest.fixture(scope="module")
def labelled():
    with FaultServer(TAX, PLANS, slow_s=1.2) as server:
        teacher = OpenAITeacher(spec(server.base_url), TAX)
        users = [(f"u_{k}", doc(k)) for k in PLANS]
        table = teacher.label(users)
        yield server, teacher, table


def rows_of(table, user):
    return [r for r in table.to_pylist() if r["user_id"] == user]


def test_every_user_gets_all_rows(labelled):
    _, _, table = labelled
    assert table.schema == TEACHER_OUTPUT_SCHEMA
    assert table.num_rows == len(PLANS) * 2 * A
    for key in PLANS:
        rows = rows_of(table, f"u_{key}")
        assert len(rows) == 2 * A
        assert sorted({r["sample_idx"] for r in rows}) == [0, 1]


def test_retries_happen_and_recover(labelled):
    server, _, table = labelled
    assert server.attempts["retry_ok"] == 2
    assert server.attempts["flaky"] == 3
    assert server.attempts["envelope"] == 2
    for key in ("healthy", "retry_ok", "flaky", "envelope"):
        rows = rows_of(table, f"u_{key}")
        assert all(r["error"] is None for r in rows), key
    # two samples (n=2) differ: the server varied the labels per choice
    g = {r["sample_idx"]: r["label"] for r in rows_of(table, "u_healthy") if r["attribute"] == "age_group"}
    assert g[0] != g[1]


def test_permanent_failures_become_error_rows_with_reasons(labelled):
    server, _, table = labelled
    expect = {"slow": "timeout after 2 retries", "dead": "HTTP 500 after 2 retries",
              "busy": "HTTP 429 after 2 retries", "bad_request": "HTTP 400"}
    for key, reason in expect.items():
        rows = rows_of(table, f"u_{key}")
        assert all(r["label"] is None and r["confidence"] is None for r in rows)
        assert all(r["error"].startswith(reason) for r in rows), (key, rows[0]["error"])
    assert server.attempts["slow"] == 3 and server.attempts["dead"] == 3 and server.attempts["busy"] == 3
    assert server.attempts["bad_request"] == 1  # a 4xx is not retried


def test_bad_answers_are_parsed_into_error_rows_not_retried(labelled):
    server, _, table = labelled
    assert server.attempts["badjson"] == 1
    assert all("no JSON object" in r["error"] or "invalid JSON" in r["error"] for r in rows_of(table, "u_badjson"))
    assert all(r["raw_output"].startswith("I think") for r in rows_of(table, "u_badjson"))
    oot = rows_of(table, "u_oot")
    bad = {r["attribute"] for r in oot if r["error"]}
    assert bad == {"gender", "interests"}
    assert all(r["label"] is not None for r in oot if r["attribute"] not in bad)
    short = rows_of(table, "u_short")
    assert all(r["error"] is None for r in short if r["sample_idx"] == 0)
    assert all("1 of 2 samples" in r["error"] for r in short if r["sample_idx"] == 1)


def test_request_shape_and_concurrency(labelled, monkeypatch):
    server, teacher, _ = labelled
    body = server.bodies[0]
    assert body["model"] == "test-model" and body["n"] == 2 and body["temperature"] == 0.7 and body["seed"] == 1
    rf = body["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["schema"] == TAX.json_schema()
    assert rf["json_schema"]["strict"] is True
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "⟦" in body["messages"][0]["content"]  # the data rule is in the system prompt
    assert 1 < server.max_in_flight <= 3  # bounded by max_concurrency, and actually concurrent
    assert teacher.requests_sent == sum(server.attempts.values())


def test_api_key_only_from_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123")
    with FaultServer(TAX, {}) as server:
        OpenAITeacher(spec(server.base_url, samples=1), TAX).label([("u1", doc("healthy"))])
        assert server.headers[0].get("Authorization") == "Bearer sk-test-123"
        assert "sk-test-123" not in str(server.bodies[0])
    monkeypatch.delenv("OPENAI_API_KEY")
    with FaultServer(TAX, {}) as server:
        OpenAITeacher(spec(server.base_url, samples=1), TAX).label([("u1", doc("healthy"))])
        assert "Authorization" not in server.headers[0]


def test_unreachable_server_gives_connection_error_rows():
    # port 9 on loopback: nothing listens, connections are refused at once
    t = OpenAITeacher(spec("http://127.0.0.1:9/v1", samples=1, max_retries=1), TAX)
    table = t.label([("u1", doc("x")), ("u2", doc("y"))])
    assert table.num_rows == 2 * A
    assert all(r["error"].startswith("connection error after 1 retries") for r in table.to_pylist())


def test_missing_base_url_is_a_clear_error():
    with pytest.raises(ConfProfileError, match="base_url"):
        make_teacher(teacher_spec(name="r", backend="openai", model="m"), TAX)


def test_label_interval_with_openai_teacher_keeps_every_user(tmp_path):
    import pyarrow as pa

    from conf_profile.config import Settings
    from conf_profile.intervals import Interval
    from conf_profile.labels.io import read_teacher_outputs
    from conf_profile.schema import DOCUMENT_SCHEMA
    from conf_profile.storage import Lake
    from conf_profile.teachers.labelling import label_interval

    iv = Interval.parse("2026-11-16..2026-11-23")
    lake = Lake.open(str(tmp_path / "lake"))
    keys = ["healthy", "retry_ok", "dead", "badjson"] * 3
    docs = [doc(k) for k in keys]
    lake.write_committed_table(Lake.run_dir(iv, "documents"), pa.table(
        {"user_id": [f"u{i}" for i in range(len(keys))], "document": docs, "n_events": [1] * len(keys),
         "n_chars": [len(d) for d in docs]}, schema=DOCUMENT_SCHEMA))
    with FaultServer(TAX, {"dead": ["500"], "retry_ok": ["500", "ok"], "badjson": ["badjson"]}) as server:
        s = Settings.load(lake=lake.uri)
        s.labels.shards = 3
        s.labels.teachers = [spec(server.base_url, samples=1)]
        from conf_profile.teachers.labelling import LabellingFailed

        with pytest.raises(LabellingFailed, match="labels.max_error_share"):  # 50 % errors: an outage, not data
            label_interval(lake, iv, s)
        s.labels.max_error_share = 1.0  # a team that accepts any share keeps every user, errors recorded
        summary = label_interval(lake, iv, s)
    st = summary["teachers"]["remote"]
    assert st["users"] == 12 and st["rows"] == 12 * A and st["shards_done"] + st["shards_skipped"] == 3
    assert st["errors"] == 6 * A  # the 'dead' and 'badjson' users: kept as error rows
    table, _ = read_teacher_outputs(lake, iv, 3)
    assert sorted(set(table["user_id"].to_pylist())) == sorted(f"u{i}" for i in range(12))
    meta = lake.manifest(f"runs/{iv.key}/teachers/remote/shard-0")["meta"]
    assert meta["teacher_info"]["backend"] == "openai" and meta["teacher_info"]["prompt_version"]
