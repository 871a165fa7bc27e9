"""A fresh fault battery, written as an acceptance reviewer would, with cases the first battery did not have.
Everything goes through the CLI in a subprocess, on a small simulated week. Each case checks the contract:
what was good is kept, what was excluded is counted (in the human summary too), what was wrong and where is
one paragraph naming the fix, the exit status is non-zero only when it must be, and no traceback is printed
without --debug."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import re
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from . import assert_json_error, assert_one_paragraph, clean_env, cli
from .test_infra import KEYS, moto_open  # noqa: F401 - the module-scoped moto S3 fixture

IV = "2026-11-02..2026-11-09"
START = "2026-11-02"
DAY = "2026-11-04"
USERS = 60


def _ok(r, what: str = "") -> None:
    assert r.code == 0, f"{what} rc={r.code}\n{r.err}\n{r.out[-2000:]}"
    assert "Traceback" not in r.err, r.err


@pytest.fixture(scope="module")
def week(tmp_path_factory) -> Path:
    """One simulated week (raw tables only), and a copy with validation and documents done."""
    root = tmp_path_factory.mktemp("unseen")
    _ok(cli("simulate", "--lake", str(root / "raw-only"), "--users", str(USERS), "--weeks", "1", "--start", START,
            "--json", cwd=root), "simulate")
    shutil.copytree(root / "raw-only", root / "with-docs")
    _ok(cli("validate", "--lake", str(root / "with-docs"), "--interval", IV, "--json", cwd=root), "validate")
    _ok(cli("documents", "--lake", str(root / "with-docs"), "--interval", IV, "--json", cwd=root), "documents")
    return root


@pytest.fixture()
def lake(week, tmp_path) -> Path:
    """A private copy of the raw week."""
    shutil.copytree(week / "raw-only", tmp_path / "lake")
    return tmp_path / "lake"


@pytest.fixture()
def docs_lake(week, tmp_path) -> Path:
    """A private copy of the week with committed documents."""
    shutil.copytree(week / "with-docs", tmp_path / "lake")
    return tmp_path / "lake"


def _part(lake: Path, table: str, day: str = DAY) -> Path:
    return lake / "raw" / table / f"dt={day}" / "part-0.parquet"


def _validate(lake: Path, *extra: str, as_json: bool = False) -> tuple:
    """validate (the human summary) and the report it wrote (what --json summarises: tables and warnings);
    with `as_json`, the --json run's object instead of the report."""
    h = cli("validate", "--lake", str(lake), "--interval", IV, *extra, cwd=lake.parent)
    assert "Traceback" not in h.err, h.err
    if as_json:
        j = cli("validate", "--lake", str(lake), "--interval", IV, "--json", *extra, cwd=lake.parent)
        assert "Traceback" not in j.err, j.err
        return j, h, json.loads([x for x in j.out.splitlines() if x.strip()][-1])
    rep = json.loads((lake / "runs" / IV.replace("..", "_") / "validation" / "report.json").read_text())
    return h, h, {"tables": rep["tables"], "warning_messages": rep["warnings"]}


def _baseline(week: Path) -> dict:
    rep = json.loads((week / "with-docs" / "runs" / IV.replace("..", "_") / "validation" / "report.json").read_text())
    return {t: (r["rows_in"], r["rows_kept"]) for t, r in rep["tables"].items() if "rows_in" in r} or \
        {t: (r.get("rows_in"), r.get("rows_kept")) for t, r in rep["tables"].items()}


def _clean_rows(lake: Path, table: str) -> int:
    return ds.dataset(str(lake / "runs" / IV.replace("..", "_") / "clean" / table), format="parquet").count_rows()


def _set(table: pa.Table, column: str, values) -> pa.Table:
    i = table.schema.get_field_index(column)
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
    return table.set_column(i, column, arr)


# ---- data: one day's file with a column of the wrong type ------------------------------------------------------
def test_wrong_column_type_in_one_day_excludes_that_file_by_name(lake):
    f = _part(lake, "watch_events")
    t = pq.read_table(f)
    bad_rows = t.num_rows
    words = [str(v) for v in t["watch_seconds"].to_pylist()]
    words[0] = "about a minute"
    pq.write_table(_set(t, "watch_seconds", words), f)
    before = f.read_bytes()
    j, h, payload = _validate(lake, as_json=True)
    # A critical table lost a whole file: the run must stop, and say which file, which column, which types.
    flat = assert_one_paragraph(h, f"raw/watch_events/dt={DAY}/part-0.parquet", "'watch_seconds'", "string",
                                "double", "replace or remove")
    assert h.code == 3 and "Report:" in flat
    assert payload["ok"] is False
    rep = payload["report"]["tables"]["watch_events"]
    assert [x["path"] if isinstance(x, dict) else x for x in rep["files_excluded"]][0].endswith(
        f"dt={DAY}/part-0.parquet"), rep["files_excluded"]
    assert rep["rows_in"] > 0 and bad_rows > 0  # the other six days were read
    assert f.read_bytes() == before  # the raw file is never touched


# ---- data: the same rows in two files of one partition ---------------------------------------------------------
def test_rows_duplicated_across_two_files_are_quarantined_once_and_counted(lake, week):
    f = _part(lake, "searches")
    copied = pq.read_table(f).num_rows
    shutil.copy(f, f.with_name("part-1.parquet"))
    j, h, payload = _validate(lake)
    _ok(h, "validate")
    base_in, base_kept = _baseline(week)["searches"]
    s = payload["tables"]["searches"]
    assert s["rows_in"] == base_in + copied and s["rows_kept"] == base_kept, s
    assert s["rows_quarantined"] == s["rows_in"] - s["rows_kept"]
    assert _clean_rows(lake, "searches") == base_kept
    said = {m.group(2): int(m.group(1)) for m in re.finditer(r"searches: (\d+) row\(s\) quarantined \((\w+)\)", h.out)}
    assert said.get("duplicate", 0) >= copied - 1 and sum(said.values()) >= s["rows_quarantined"], (said, h.out)  # a row may fail 2 checks


# ---- data: zero-row files --------------------------------------------------------------------------------------
def test_zero_row_files_lose_nothing_and_an_empty_day_is_named(lake, week):
    f = _part(lake, "watch_events")
    t = pq.read_table(f)
    pq.write_table(t.slice(0, 0), f.with_name("part-1.parquet"))  # next to a day's data
    empty_day = "2026-11-06"
    g = _part(lake, "comments", empty_day)
    gone = pq.read_table(g).num_rows
    pq.write_table(pq.read_table(g).slice(0, 0), g)  # a day whose only file has no rows
    j, h, payload = _validate(lake)
    _ok(h, "validate")
    base = _baseline(week)
    assert payload["tables"]["watch_events"]["rows_in"] == base["watch_events"][0]
    assert payload["tables"]["comments"]["rows_in"] == base["comments"][0] - gone
    assert any(empty_day in w and "empty" in w for w in payload["warning_messages"]), payload["warning_messages"]
    assert f"empty partition(s) for day(s) {empty_day}" in h.out or "more (see the report)" in h.out, h.out
    for w in payload["warning_messages"]:  # every exclusion is in the human summary, however many warnings
        if " quarantined (" in w:
            assert w in h.out, (w, h.out)


# ---- data: timestamps in another unit and time zone, or as plain numbers ---------------------------------------
def test_timestamps_in_another_unit_and_time_zone_are_the_same_instants(lake, week):
    f = _part(lake, "watch_events")
    t = pq.read_table(f)
    ms = pc.cast(t["ts"], pa.timestamp("ms", tz="UTC"), safe=False)
    pq.write_table(_set(t, "ts", pc.cast(ms, pa.timestamp("ms", tz="Asia/Tokyo"))), f)
    j, h, payload = _validate(lake)
    _ok(h, "validate")
    base_in, base_kept = _baseline(week)["watch_events"]
    assert (payload["tables"]["watch_events"]["rows_in"], payload["tables"]["watch_events"]["rows_kept"]) == \
        (base_in, base_kept)
    assert "cast ts timestamp[ms, tz=Asia/Tokyo]->timestamp[us, tz=UTC] in 1 file(s)" in h.out, h.out
    clean = ds.dataset(str(lake / "runs" / IV.replace("..", "_") / "clean" / "watch_events"),
                       format="parquet").to_table(columns=["ts"])
    day = dt.date.fromisoformat(DAY)
    on_day = pc.sum(pc.equal(pc.cast(clean["ts"], pa.date32()), pa.scalar(day, pa.date32()))).as_py()
    assert on_day > 0  # the instants stayed on their day (Tokyo is UTC+9: a naive reading would shift them)


def test_timestamps_as_epoch_numbers_exclude_the_file_by_name(lake):
    f = _part(lake, "searches")
    t = pq.read_table(f)
    pq.write_table(_set(t, "ts", pc.cast(t["ts"], pa.int64())), f)
    j, h, payload = _validate(lake, as_json=True)
    assert_one_paragraph(h, f"raw/searches/dt={DAY}/part-0.parquet", "'ts' is int64", "timestamp")
    assert payload["ok"] is False


# ---- data: events outside the interval inside a day's partition ------------------------------------------------
def test_events_outside_the_interval_inside_a_day_partition_are_quarantined(lake, week):
    f = _part(lake, "watch_events")
    t = pq.read_table(f)
    ts = t["ts"].to_pylist()
    far = dt.datetime(2026, 9, 1, 12, tzinfo=dt.UTC)
    ts[:7] = [far] * 7
    pq.write_table(_set(t, "ts", pa.array(ts, t.schema.field("ts").type)), f)
    j, h, payload = _validate(lake)
    _ok(h, "validate")
    base_in, base_kept = _baseline(week)["watch_events"]
    s = payload["tables"]["watch_events"]
    assert s["rows_in"] == base_in and s["rows_kept"] <= base_kept - 7 + 1, s  # (one may have been a duplicate)
    assert "row(s) quarantined (ts_outside_interval)" in h.out, h.out
    q = pq.read_table(lake / "runs" / IV.replace("..", "_") / "validation" / "quarantine" / "watch_events.parquet")
    assert pc.sum(pc.equal(q["reason"], "ts_outside_interval")).as_py() >= 6


# ---- taxonomy files ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("body", "names"), [
    ("attributes:\n  - {name: gender, kind: single, classes: [male, female, male]}\n",
     ["attributes[0] (gender)", "'male' twice"]),
    ("attributes:\n  - {name: gender, kind: single, classes: [male, female]}\n  - {name: age, kind: single}\n",
     ["attributes[1] (age).classes", "Field required"]),
    ("attributes:\n  - {name: hobby, kind: multi, classes: []}\n", ["attributes[0] (hobby).classes", "at least 1"]),
    ("attributes:\n  - {name: a, kind: single, classes: [x, y]}\n  - {name: a, kind: single, classes: [z]}\n",
     ["'a' is listed more than once"]),
    ("attributes:\n  - {name: a, kind: single, classes: [x, y\n", ["not valid YAML", "line 3, column 1"]),
], ids=["duplicate-class", "no-classes-key", "empty-classes", "duplicate-attribute", "bad-yaml"])
def test_broken_taxonomy_file_names_the_attribute_and_the_fix(tmp_path, body, names):
    tax = tmp_path / "tax.yaml"
    tax.write_text(body)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"taxonomy_path: {tax}\n")
    r = cli("taxonomy", "--config", str(cfg), cwd=tmp_path)
    flat = assert_one_paragraph(r, str(tax), *names)
    assert "errors.pydantic.dev" not in flat and "^" not in flat
    assert_json_error(cli("taxonomy", "--config", str(cfg), "--json", cwd=tmp_path), str(tax))


# ---- settings files -----------------------------------------------------------------------------------------------
def test_typo_in_a_nested_teacher_key_is_refused_before_anything_runs(docs_lake):
    cfg = docs_lake.parent / "cfg.yaml"
    cfg.write_text("labels:\n  teachers:\n    - name: lex\n      backend: lexicon\n      sources: [watch]\n"
                   "      temprature: 0.2\n")
    r = cli("label", "--config", str(cfg), "--lake", str(docs_lake), "--interval", IV, cwd=docs_lake.parent)
    assert_one_paragraph(r, "labels.teachers[0].temprature", "did you mean 'temperature'", "cfg.yaml")
    assert not (docs_lake / "runs" / IV.replace("..", "_") / "teachers").exists()


def test_settings_file_with_invalid_yaml_is_one_line_with_its_place(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("labels:\n  shards: [4\n")
    r = cli("config", "--config", str(cfg), cwd=tmp_path)
    flat = assert_one_paragraph(r, str(cfg), "not valid YAML", "line 3, column 1", "Fix the YAML syntax")
    assert "^" not in flat and "<unicode string>" not in flat


# ---- lexicon files ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "names"), [
    ("gender:\n  male: {watch: [football, beard]\n", ["not valid YAML", "line 3, column 1", "flow mapping"]),
    (None, ["does not exist", "lexicon init"]),
], ids=["invalid-yaml", "missing-file"])
def test_broken_lexicon_fails_once_before_any_shard(docs_lake, text, names):
    lex = docs_lake.parent / "lexicon.yaml"
    if text is not None:
        lex.write_text(text)
    cfg = docs_lake.parent / "cfg.yaml"
    cfg.write_text(f"labels:\n  lexicon: {lex}\n  shards: 2\n")
    r = cli("label", "--config", str(cfg), "--lake", str(docs_lake), "--interval", IV, cwd=docs_lake.parent)
    flat = assert_one_paragraph(r, str(lex), *names)
    assert "WARNING" not in r.err and "^" not in flat  # not one multi-line warning per teacher and shard
    teachers = docs_lake / "runs" / IV.replace("..", "_") / "teachers"
    assert not teachers.exists() or not any(teachers.rglob("*.parquet"))


# ---- where outputs go: a read-only lake, a full disk ------------------------------------------------------------
@contextlib.contextmanager
def _read_only(folder: Path):
    """`folder` read-only for this process: a read-only bind mount as root (root ignores file modes), else
    chmod. Skips where neither is possible."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")] if p.is_dir()}
        for p in modes:
            p.chmod(0o555)
        try:
            yield folder
        finally:
            for p, m in modes.items():
                p.chmod(m)
        return
    ro = folder.with_name(folder.name + "-ro")
    ro.mkdir()
    ok = subprocess.run(["mount", "--bind", str(folder), str(ro)], capture_output=True).returncode == 0 and \
        subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], capture_output=True).returncode == 0
    try:
        if not ok:
            pytest.skip("running as root without mount: a read-only folder cannot be made here")
        yield ro
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)


def test_read_only_lake_names_the_path_and_the_setting(lake):
    before = sorted(p.relative_to(lake) for p in lake.rglob("*"))
    with _read_only(lake) as ro:
        r = cli("validate", "--lake", str(ro), "--interval", IV, cwd=lake.parent)
        flat = assert_one_paragraph(r, str(ro), "--lake", "writable")
        assert any(w in flat for w in ("read-only file system", "permission denied")), flat
        payload = assert_json_error(cli("validate", "--lake", str(ro), "--interval", IV, "--json",
                                        cwd=lake.parent))
        assert payload["error"] == "LakeError"
    assert sorted(p.relative_to(lake) for p in lake.rglob("*")) == before  # nothing lost, nothing half-written


def test_full_disk_is_one_paragraph_not_a_bug(lake, capsys, monkeypatch):
    """No tiny tmpfs here: the write that hits ENOSPC is injected (pyarrow reports it as text, not errno)."""
    from conf_profile.cli import main
    from conf_profile.storage import Lake

    def full(self, *a, **k):
        raise OSError("[Errno 28] Error writing bytes to file '/x/runs/part-0.parquet'. Detail: [errno 28] "
                      "No space left on device")

    monkeypatch.setattr(Lake, "write_json", full)
    monkeypatch.setattr(Lake, "write_table", full, raising=False)
    for k in [k for k in os.environ if k.startswith("CONF_PROFILE_")]:
        monkeypatch.delenv(k)
    code = main(["validate", "--lake", str(lake), "--interval", IV])
    err = capsys.readouterr().err
    flat = " ".join(err.split())
    assert code != 0 and "Traceback" not in err and "likely a bug" not in flat, err
    assert "no space left on the device" in flat and "/x/runs/part-0.parquet" in flat and "rerun" in flat, flat


# ---- object store: the bucket exists, the prefix is empty ---------------------------------------------------------
def test_empty_prefix_in_an_existing_bucket_is_named(tmp_path, moto_open):  # noqa: F811
    env = clean_env(CONF_PROFILE_S3__ENDPOINT_URL=moto_open, **KEYS)
    r = cli("simulate", "--lake", "s3://shared/weekly", "--users", "10", "--weeks", "1", "--start", START, "--json",
            cwd=tmp_path, env=env)
    _ok(r, "simulate")
    r = cli("validate", "--lake", "s3://shared/wekly", "--interval", IV, cwd=tmp_path, env=env)
    flat = assert_one_paragraph(r, "s3://shared/wekly", "--lake")
    assert "likely a bug" not in flat
    r = cli("validate", "--lake", "s3://shared/wekly", "--interval", IV, "--json", cwd=tmp_path, env=env)
    assert_json_error(r, "s3://shared/wekly")  # (the good prefix validates: test_infra.py)


# ---- teacher answers: labels in other case, with whitespace ----------------------------------------------------------
class _Answers(BaseHTTPRequestHandler):
    """An OpenAI-compatible server whose answers spell every label sloppily but unambiguously."""

    answer: dict = {}

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        n = int(body.get("n", 1))
        msg = {"role": "assistant", "content": json.dumps(self.answer)}
        out = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
                          "choices": [{"index": i, "message": msg, "finish_reason": "stop"} for i in range(n)],
                          "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass


def _sloppy(label: str) -> str:
    """Other case and surrounding whitespace. (Other separators, "18-24" for 18_24, are refused by design:
    tests/test_teachers_parse.py.)"""
    return f"  {label.title()} \t" if "_" in label else f"\n{label.upper()} "


def test_teacher_labels_in_other_case_and_with_whitespace_are_kept(docs_lake):
    from conf_profile.taxonomy import load_taxonomy

    tax = load_taxonomy()
    want = {a.name: ([a.classes[0], a.classes[-1]] if a.is_multi else a.classes[-1]) for a in tax.attributes}
    _Answers.answer = {a: {"label": [_sloppy(x) for x in v] if isinstance(v, list) else _sloppy(v),
                           "confidence": 4, "rationale": "r"} for a, v in want.items()}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = docs_lake.parent / "cfg.yaml"
        cfg.write_text("labels:\n  shards: 1\n  teachers:\n    - name: llm\n      backend: openai\n      model: m\n"
                       f"      base_url: http://127.0.0.1:{server.server_address[1]}/v1\n"
                       "      sources: [profile, watch]\n")
        r = cli("label", "--config", str(cfg), "--lake", str(docs_lake), "--interval", IV, "--json",
                cwd=docs_lake.parent, env=clean_env(OPENAI_API_KEY="x"))
    finally:
        server.shutdown()
    _ok(r, "label")
    summary = json.loads(r.out.splitlines()[-1])
    assert summary["teachers"]["llm"]["errors"] == 0, summary["teachers"]
    rows = ds.dataset(str(docs_lake / "runs" / IV.replace("..", "_") / "teachers" / "llm"),
                      format="parquet").to_table().to_pylist()
    assert rows
    by_attr: dict[str, set] = {}
    for row in rows:
        label = row.get("label")
        by_attr.setdefault(row["attribute"], set()).add(tuple(sorted(label if isinstance(label, list) else [label])))
    for attr, v in want.items():
        assert by_attr[attr] == {tuple(sorted(v if isinstance(v, list) else [v]))}, (attr, by_attr[attr])


# ---- documents: emoji only, right-to-left text, bidi controls --------------------------------------------------------
def test_emoji_only_and_right_to_left_text_reach_documents_without_bidi_controls(lake):
    f = _part(lake, "comments")
    t = pq.read_table(f)
    uids = t["user_id"].to_pylist()
    texts = t["text"].to_pylist()
    texts[0], texts[1], texts[2] = "😀😂🎉🔥" * 5, "مرحبا بكم في القناة", "\u202eevil\u202c שלום עולם"
    pq.write_table(_set(t, "text", texts), f)
    cfg = lake.parent / "cfg.yaml"
    cfg.write_text("documents:\n  max_comments: 50\n")
    _ok(cli("validate", "--config", str(cfg), "--lake", str(lake), "--interval", IV, cwd=lake.parent), "validate")
    r = cli("documents", "--config", str(cfg), "--lake", str(lake), "--interval", IV, "--json", cwd=lake.parent)
    _ok(r, "documents")
    docs = {d["user_id"]: d["document"] for d in
            pq.read_table(lake / "runs" / IV.replace("..", "_") / "documents").to_pylist()}
    assert "⟦" + "😀😂🎉🔥" * 5 + "⟧" in docs[uids[0]]
    assert "مرحبا بكم في القناة" in docs[uids[1]]
    assert "שלום עולם" in docs[uids[2]] and "\u202e" not in docs[uids[2]] and "\u202c" not in docs[uids[2]]
    assert not any("\u202e" in d for d in docs.values())


# ---- one user with 100k events -----------------------------------------------------------------------------------------
def test_user_with_100k_events_gets_one_bounded_document(lake, week):
    f = _part(lake, "watch_events")
    t = pq.read_table(f)
    heavy = t["user_id"][3].as_py()
    one = t.slice(3, 1)
    n = 100_000
    big = pa.concat_tables([one] * n).combine_chunks()
    start = pa.scalar(dt.datetime(2026, 11, 4, tzinfo=dt.UTC), pa.timestamp("us", tz="UTC")).value
    big = _set(big, "ts", pa.array(start + pa.array(range(n), pa.int64()).to_numpy() * 800_000,
                                   pa.int64()).cast(pa.timestamp("us", tz="UTC")))
    big = _set(big, "video_id", [f"v{i % 4000}" for i in range(n)])
    pq.write_table(pa.concat_tables([t, big]), f)
    j, h, payload = _validate(lake)
    _ok(h, "validate")
    assert j.seconds < 120, f"validate took {j.seconds:.0f} s"
    base_in, _ = _baseline(week)["watch_events"]
    assert payload["tables"]["watch_events"]["rows_in"] == base_in + n
    r = cli("documents", "--lake", str(lake), "--interval", IV, "--json", cwd=lake.parent)
    _ok(r, "documents")
    assert r.seconds < 120, f"documents took {r.seconds:.0f} s"
    s = json.loads(r.out.splitlines()[-1])
    docs = {d["user_id"]: d["document"] for d in
            pq.read_table(lake / "runs" / IV.replace("..", "_") / "documents").to_pylist()}
    assert len(docs) == USERS or len(docs) == s.get("documents", len(docs))
    assert len(docs[heavy]) <= 1200 + 200 and docs[heavy].count("\n- [") <= 12 + 8 + 5 + 4


# ---- MLflow: a tracking URI that cannot be written --------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["plain-folder", "sqlite-under-a-file", "sqlite-on-read-only", "sqlite-in-proc"])
def test_unwritable_mlflow_store_fails_within_seconds_naming_the_setting(tmp_path, kind):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    ctx = contextlib.nullcontext(tmp_path)
    uri = {"plain-folder": str(tmp_path / "mlruns"), "sqlite-under-a-file": f"sqlite:///{blocker}/mlflow.db",
           "sqlite-in-proc": "sqlite:////proc/no-such/mlflow.db"}.get(kind)
    if kind == "sqlite-on-read-only":
        (tmp_path / "ro").mkdir()
        ctx = _read_only(tmp_path / "ro")
    with ctx as where:
        uri = uri or f"sqlite:///{where}/mlflow.db"
        env = clean_env(CONF_PROFILE_MLFLOW__TRACKING_URI=uri, CONF_PROFILE_DATA_DIR=str(tmp_path / "data"))
        r = cli("registry", "list", cwd=tmp_path, env=env, timeout=60)
        flat = assert_one_paragraph(r, "mlflow.tracking_uri", "CONF_PROFILE_MLFLOW__TRACKING_URI", "sqlite:///",
                                    bound_s=20)
        assert "maintenance mode" not in flat and "likely a bug" not in flat
    if kind == "plain-folder":
        assert not (tmp_path / "mlruns").exists()


def test_storage_errors_map_only_what_the_machine_caused():
    from conf_profile.cli import storage_error

    assert storage_error(OSError(errno.EROFS, "Read-only file system", "/l/runs")).message.startswith(
        "Cannot write /l/runs: read-only file system")
    assert storage_error(PermissionError(errno.EACCES, "Permission denied", "/l")) is not None
    assert storage_error(FileNotFoundError(errno.ENOENT, "No such file", "/l")) is None  # a real bug stays one
    assert storage_error(ValueError("x")) is None and storage_error(BrokenPipeError()) is None
