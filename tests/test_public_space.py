"""A public Space is run by strangers: where the app listens, what it shows of its configuration,
and how it holds up against hostile requests (issue #14)."""

import errno
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import gradio as gr
import httpx
import orjson
import pytest
from app_process import (
    ROOT,
    AppProcess,
    event_data,
    fn_indices,
    listening_addresses,
    output_index,
    queue_event,
)
from conftest import serve

from explorer import api, policy
from explorer.inference import prepare, translate_one
from explorer.loading import load_translator
from explorer.page import build_demo
from explorer.policy import MAX_BEAM, MAX_TARGET_TOKENS, MAX_WORDS, capped_trace
from explorer.trace_files import FOLDER_PREFIX, TraceFiles
from explorer.trace_store import TraceStore
from explorer.views import View
from training.translator import SourceInput

LONG = "<b>" * 500  # ~2,000 characters of unknown tokens: the worst case of the issue
MB = 1_000_000  # 2 MB: 2,000,000 bytes


def test_an_empty_server_name_means_loopback_only(tmp_path):
    app = AppProcess([], log=tmp_path / "app.log", env={"GRADIO_SERVER_NAME": ""})
    try:
        app.wait()
        assert listening_addresses(app.port) == {"127.0.0.1"}
    finally:
        app.stop()


@pytest.fixture(scope="module")
def space(loaded):
    """The app with a store of 3 traces, so that a few sessions are enough to fill it."""
    store, files = TraceStore(max_traces=3), TraceFiles()
    demo = build_demo(loaded, store=store, files=files)
    url = serve(demo, loaded)
    try:
        yield url, store, files, fn_indices(url)
    finally:
        demo.close()
        files.remove_all()


def run_data(space, text: str, beam: int) -> list:
    """The Translate event's inputs, the view as the page first shows it."""
    return event_data(space[0], "run", source_text=text, beam=beam)


def new_session() -> str:
    return uuid.uuid4().hex


def event(space, name, data, session=None):
    url, _, _, fns = space
    msg, size = queue_event(url, fns[name], data, session or new_session())
    assert msg.get("success"), msg
    return msg["output"]["data"], size


def post(url, path, **kw):
    return httpx.post(url.rstrip("/") + "/gradio_api" + path, timeout=30, **kw)


def call(url, name, data):
    """POST /call/<name> then read its result: (event kind, payload)."""
    r = post(url, f"/call/{name}", json={"data": data})
    assert r.status_code == 200, r.text
    text = httpx.get(url.rstrip("/") + f"/gradio_api/call/{name}/{r.json()['event_id']}", timeout=60).text
    kind = text.split("event: ")[-1].split("\n")[0]
    return kind, json.loads(text.split("data: ")[-1])


# 1. Every route to the model waits in the one bounded queue; the direct routes are closed.


def test_every_route_to_the_model_shares_one_bounded_queue_and_direct_posts_are_refused(loaded, monkeypatch):
    gate, lock = threading.Event(), threading.Lock()
    running, peak = [0], [0]

    def held(real):
        def run(*args, **kwargs):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            gate.wait(60)
            with lock:
                running[0] -= 1
            return real(*args, **kwargs)

        return run

    monkeypatch.setattr(policy, "trace", held(policy.trace))
    monkeypatch.setattr(api, "translate_one", held(api.translate_one))
    demo = build_demo(loaded, queue_size=2, concurrency=1)
    url = serve(demo, loaded)
    try:
        fns = fn_indices(url)
        ui_session = new_session()
        data = event_data(url, "run", source_text="I love you.", beam=1)
        join = {"data": data, "fn_index": fns["run"], "session_hash": ui_session}
        assert post(url, "/queue/join", json=join).status_code == 200  # the UI's private event
        first = post(url, "/call/translate", json={"data": ["I love you.", 1]})
        deadline = time.time() + 30
        while running[0] == 0 and time.time() < deadline:
            time.sleep(0.05)
        second = post(url, "/call/v2/trace", json={"text": "Thank you.", "beam": 1})
        assert first.status_code == second.status_code == 200
        time.sleep(0.5)
        # One runs, two wait: the queue is full, whichever route a request takes, and it says so at once.
        refusals = {
            "queue/join": post(url, "/queue/join", json={**join, "session_hash": new_session()}),
            "call": post(url, "/call/trace", json={"data": ["I love you.", 1]}),
            "call/v2": post(url, "/call/v2/translate", json={"text": "I love you."}),
        }
        for route, r in refusals.items():
            assert r.status_code == 503 and "Queue is full" in r.text, route
            assert r.elapsed.total_seconds() < 2, route
        # The routes that would skip the queue are closed, for the API and for the UI's private event.
        direct = [
            ("/run/translate", {"data": ["I love you.", 1]}),
            ("/api/trace", {"data": ["I love you.", 1]}),
            ("/run/predict", {"data": data, "fn_index": fns["run"]}),
        ]
        for path, body in direct:
            r = post(url, path, json=body)
            assert r.status_code == 404 and "join the queue" in r.text, path
        assert running[0] == 1
        gate.set()
        for name, r in (("translate", first), ("trace", second)):
            text = httpx.get(f"{url}gradio_api/call/{name}/{r.json()['event_id']}", timeout=60).text
            assert "event: complete" in text, text
        assert peak[0] == 1  # the UI event, /call and /call/v2 never ran side by side: one limit for all
    finally:
        gate.set()
        demo.close()


def test_renders_outside_the_queue_answer_a_direct_post_and_never_run_the_model(space, monkeypatch):
    """The re-renders skip the queue (policy.RENDER_EVENT), so POST /run/predict reaches them: from a
    stranger, with or without sense, they answer in JSON and never run the model."""
    ran = []
    monkeypatch.setattr(policy, "trace", lambda *a, **k: ran.append(a))
    url, _, _, fns = space
    for name in ("rerender", "on_step", "on_pick_fast", "on_click_fast"):
        good = event_data(url, name)
        for data in (
            good,
            [None] * len(good),
            ["<script>"] * len(good),
            good[:1],
            [{"a": [1] * 5}] * len(good),
        ):
            body = {"data": data, "fn_index": fns[name], "session_hash": new_session()}
            r = post(url, "/run/predict", json=body)
            assert r.status_code in (200, 500) and isinstance(r.json(), dict), (name, r.text[:200])
            if data is good:  # a session with no translation: told what to do
                assert r.status_code == 200 and re.search("Translate (a sentence|again)", r.text), name
    assert not ran


def test_at_most_renders_run_at_once_and_the_rest_wait_then_are_refused(monkeypatch):
    gate, inside = threading.Event(), []
    monkeypatch.setattr(policy, "RENDER_WAIT_S", 0.2)
    render = policy.bounded(lambda: inside.append(1) or gate.wait(10))
    threads = [threading.Thread(target=render) for _ in range(policy.RENDERS)]
    for t in threads:
        t.start()
    while len(inside) < policy.RENDERS:
        time.sleep(0.01)
    with pytest.raises(gr.Error, match="busy"):
        render()  # waited 0.2 s for a slot
    gate.set()
    for t in threads:
        t.join()
    assert render() is True and len(inside) == policy.RENDERS + 1  # the slots are free again


# 2. A session holds a key; the traces live in one bounded store.


def test_new_sessions_never_grow_the_trace_store_beyond_its_cap(space):
    _, store, _, _ = space
    sessions = [new_session() for _ in range(8)]
    for s in sessions:
        out, _ = event(space, "run", run_data(space, "I love you.", 1), s)
        assert out[0] == "我爱你。"
        assert len(store) <= 3
    assert len(store) == 3
    # The newest visitors can still explore; the oldest one is told plainly what to do.
    toggle = event_data(space[0], "rerender", kind="decoder", layer="all")
    notices = output_index(space[0], "rerender", "notices")
    newest, _ = event(space, "rerender", toggle, sessions[-1])
    assert json.loads(newest[0])["data"] and "Press Translate again" not in str(newest[notices])
    oldest, _ = event(space, "rerender", toggle, sessions[0])
    # the plot is left alone: an update with no value (gr.HTML's also names its unchanged props)
    assert "Press Translate again" in oldest[notices]
    assert oldest[0]["__type__"] == "update" and "value" not in oldest[0]


def test_the_session_state_is_a_key_into_the_store(loaded):
    from conftest import translate_values

    from explorer.page import build, run

    store = TraceStore()
    _, shared = build(loaded, store=store)
    values = translate_values(shared, "I love you.", 1)
    out = {c.elem_id or c.__class__.__name__: v for c, v in run(shared, values).items()}
    key = out["State"]
    assert isinstance(key, str) and len(key) < 64
    assert store.get(key).translation == "我爱你。"


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_trace_store_bounds_count_bytes_and_age(loaded):
    from explorer.inference import trace

    tr = trace(loaded.translator, "I love you.", beam=1)
    size = tr.encoder_self.nbytes + tr.decoder_self.nbytes + tr.cross.nbytes
    clock = Clock()
    store = TraceStore(max_traces=3, max_bytes=10 * size, ttl_s=60, clock=clock)
    keys = [store.put(tr) for _ in range(3)]
    store.get(keys[0])  # used: now the most recent
    keys.append(store.put(tr))
    assert len(store) == 3 and store.get(keys[1]) is None and store.get(keys[0]) is tr
    small = TraceStore(max_traces=100, max_bytes=int(2.5 * size), clock=clock)
    for _ in range(5):
        small.put(tr)
    assert len(small) == 2 and small.nbytes == 2 * size
    clock.now += 61
    assert store.get(keys[0]) is None and len(store) == 0  # past the time to live
    assert store.get(None) is None and store.get("no such key") is None


# 3. The explorer's input cap: words, not pieces; no response over 2 MB.


def test_a_long_input_is_cut_and_every_response_stays_under_2_mb(space):
    url, _, _, _ = space
    r = post(url, "/call/trace", json={"data": [LONG, 8]})
    raw = httpx.get(f"{url}gradio_api/call/trace/{r.json()['event_id']}", timeout=120).content
    assert len(raw) < 2 * MB
    data = json.loads(raw.decode().split("data: ")[-1])[0]
    assert len(data["source_words"]) == MAX_WORDS + 1  # </s> included
    assert len(data["target_tokens"]) <= MAX_TARGET_TOKENS
    assert any(f"explorer's maximum of {MAX_WORDS} words" in n for n in data["notices"])
    session = new_session()
    out, size = event(space, "run", event_data(space[0], "run", source_text=LONG, beam=8), session)
    assert size < 2 * MB and f"maximum of {MAX_WORDS} words" in out[1]
    for kind in ("encoder", "decoder", "cross"):
        _, size = event(space, "rerender", event_data(space[0], "rerender", kind=kind, layer="all"), session)
        assert size < 2 * MB, kind


def test_the_output_cap_stops_decoding_with_a_notice(loaded):
    from explorer.inference import trace

    tr = trace(loaded.translator, "I drink tea every day . " * 4, beam=2, max_target_tokens=6)
    assert len(tr.target_tokens) <= 6 and tr.cross.shape[2] == len(tr.target_tokens)
    assert any("explorer's maximum of 6 tokens" in n for n in tr.notices)
    short = trace(loaded.translator, "I love you.", beam=2, max_target_tokens=40)  # under the cap: unchanged
    assert (
        short.translation == translate_one(loaded.translator, "I love you.", beam=2)
        and len(short.notices) == 0
    )


SHIPPED = ROOT / "weights"


@pytest.mark.skipif(not (SHIPPED / "config.json").is_file(), reason="no model shipped in weights/")
@pytest.mark.parametrize("text", [LONG, "1 " * 1000, " ".join(["x" * 66] * 40)])  # junk, numbers, long labels
def test_the_shipped_models_worst_case_fits_the_response_and_time_budget(text):
    """The caps were chosen on the shipped model: every view of its worst case under 2 MB as sent."""
    from explorer.views import attention_view, step_view

    shipped = load_translator(str(SHIPPED))
    view = lambda kind: View(kind, layer=None, heads=[], step=0)  # every layer and head
    start = time.process_time()  # CPU time: what a request costs, whatever else the machine runs
    tr = capped_trace(shipped, text, MAX_BEAM)
    figures = [attention_view(tr, view("cross"))]  # what the Translate button returns
    step_view(tr, 0)
    translate_cpu = time.process_time() - start
    toggle_cpu = 0.0
    for kind in ("decoder", "encoder"):
        start = time.process_time()
        figures.append(attention_view(tr, view(kind)))
        toggle_cpu = max(toggle_cpu, time.process_time() - start)
    for fig in figures:  # the plot's JSON as a string inside the event's JSON, as the queue sends it (UTF-8)
        assert len(orjson.dumps(fig.to_json())) < 2 * MB
    assert len(json.dumps(tr.to_json())) < 2 * MB  # /call/trace sends ASCII JSON: the larger
    # ~1.3 s and ~0.3 s on the 2-core machine the caps were chosen on; uncapped the trace alone took 6 s.
    assert translate_cpu < 3.0 and toggle_cpu < 1.0, (translate_cpu, toggle_cpu)


class PieceTranslator:
    """A stand-in whose tokenizer splits every word into two pieces, as a subword model may."""

    def prepare(self, text):
        words = text.split()
        tokens = [p for w in words for p in (w[:1], w[1:] + "@@")]
        word_index = [i for i in range(len(words)) for _ in range(2)]
        return SourceInput(
            tokens + ["</s>"],
            list(range(4, 4 + len(tokens))) + [3],
            0,
            [False] * (len(tokens) + 1),
            words + ["</s>"],
            word_index + [len(words)],
        )


def test_the_cap_counts_words_not_subword_pieces():
    text = " ".join(f"w{i}" for i in range(50))
    _, source, notices = prepare(PieceTranslator(), text, max_words=30)
    assert source.words == [f"w{i}" for i in range(30)] + ["</s>"]
    assert len(source.tokens) == 2 * 30 + 1 and source.word_index[-1] == 30 and source.ids[-1] == 3
    assert notices == [
        "Input cut to the explorer's maximum of 30 words; the last 20 words were not translated."
    ]
    _, _, notices = prepare(PieceTranslator(), " ".join(f"w{i}" for i in range(31)), max_words=30)
    assert notices == ["Input cut to the explorer's maximum of 30 words; the last word was not translated."]
    _, source, notices = prepare(PieceTranslator(), " ".join(f"w{i}" for i in range(20)), max_words=30)
    assert len(source.tokens) == 2 * 20 + 1 and notices == []  # 40 pieces, but 20 words: not cut


# 4. Trace files: on request, atomic, bounded, removed at start (dead PIDs) and at shutdown.


class FullDisk:
    """A file whose first write stops after 100 bytes with ENOSPC, as on a full disk."""

    def __init__(self, path, mode):
        self.f = open(path, mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        self.f.write(data[:100])
        raise OSError(errno.ENOSPC, "No space left on device")


def test_trace_files_are_bounded_and_never_half_written(loaded, tmp_path, monkeypatch):
    from explorer import trace_files
    from explorer.inference import trace

    tr = trace(loaded.translator, "I love you.", beam=1)
    size = len(trace_files.encode(tr))
    files = TraceFiles(root=tmp_path, max_bytes=int(2.5 * size))
    paths = [files.write(tr) for _ in range(4)]
    assert files.files() == sorted(paths[-2:]) and files.total_bytes() <= 2.5 * size
    assert json.loads(paths[-1].read_text(encoding="utf-8"))["translation"] == "我爱你。"

    monkeypatch.setattr(trace_files, "open", lambda path, mode: FullDisk(path, mode), raising=False)
    with pytest.raises(OSError):
        files.write(tr)
    left = list(files.dir.iterdir())  # making room may have removed an old file; no new or partial one
    assert left and {p.name for p in left} <= {p.name for p in paths}
    assert all(json.loads(p.read_text(encoding="utf-8")) for p in left)


def test_folders_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for pid in (dead.pid, os.getppid(), os.getpid()):
        (tmp_path / f"{FOLDER_PREFIX}{pid}").mkdir()
        (tmp_path / f"{FOLDER_PREFIX}{pid}" / "trace-x.json").write_text("{}")
    removed = TraceFiles(root=tmp_path).remove_stale([tmp_path])
    # The dead process's folder goes, and a leftover of our own PID (an earlier process that had it).
    assert sorted(removed) == sorted(
        [tmp_path / f"{FOLDER_PREFIX}{dead.pid}", tmp_path / f"{FOLDER_PREFIX}{os.getpid()}"]
    )
    assert (tmp_path / f"{FOLDER_PREFIX}{os.getppid()}").is_dir()


def test_a_full_disk_leaves_translation_working_and_the_download_unavailable(space, loaded, monkeypatch):
    _, _, files, _ = space

    def full_disk(data, stem, suffix):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "write_bytes", full_disk)
    session = new_session()
    out, _ = event(space, "run", run_data(space, "I love you.", 1), session)
    assert out[0] == "我爱你。"
    for name, data in (
        ("prepare_download", [None]),
        ("prepare_csv", event_data(space[0], "prepare_csv")),
    ):  # JSON and CSV alike
        status, download = event(space, name, data, session)[0]
        assert "download is unavailable" in status and "No space left" in status and "Translating" in status
        assert download["value"] is None and download["interactive"] is False
    out, _ = event(space, "run", run_data(space, "Thank you.", 1), session)
    assert out[0] == translate_one(
        loaded.translator, "Thank you.", beam=1
    )  # and translating still works afterwards


# 5. A lone surrogate through the UI's event: translated, and its JSON downloads.


def test_a_lone_surrogate_translates_and_its_json_downloads(space):
    _, _, files, _ = space
    session = new_session()
    out, _ = event(space, "run", run_data(space, "I love \ud800 you.", 1), session)
    assert out[0] and "\ufffd" in out[1]  # named in the unknown-words notice as the replacement character
    status, download = event(space, "prepare_download", [None], session)[0]
    assert "Ready" in status and "Press **Download trace JSON**" in status
    assert Path(download["value"]["path"]).parent == files.dir
    served = httpx.get(download["value"]["url"], timeout=30)
    assert served.status_code == 200
    data = json.loads(served.content.decode("utf-8"))
    assert data["text"] == "I love \ufffd you." and "\ufffd" in data["source_tokens"]


# 8. No uploads: the app takes no files.


@pytest.mark.parametrize("route", ["/upload", "/process_recording"])
@pytest.mark.parametrize("size", [10, 100_000])
def test_uploads_are_refused(space, route, size):
    url, _, _, _ = space
    r = post(url, route, files={"files": ("x.bin", b"\0" * size)})
    assert r.status_code == 403 and "no file uploads" in r.text


def test_large_request_bodies_are_refused_with_or_without_a_length(space):
    url, _, _, fns = space
    body = json.dumps(
        {"data": ["word " * 70_000, 1], "fn_index": fns["run"], "session_hash": new_session()}
    ).encode()
    assert (
        post(url, "/queue/join", content=body, headers={"content-type": "application/json"}).status_code
        == 413
    )
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))  # no Content-Length: chunked
    assert (
        post(url, "/queue/join", content=chunks, headers={"content-type": "application/json"}).status_code
        == 413
    )


# 9. Refusals are short: defaults, 4xx for bad arguments, one log line, one line at start.


def test_call_translate_without_beam_uses_the_models_default(space, loaded):
    url, _, _, _ = space
    kind, data = call(url, "translate", ["I love you."])
    assert kind == "complete" and data == ["我爱你。"]
    kind, data = call(url, "trace", ["Thank you."])
    assert kind == "complete" and data[0]["decoding"]["beam"] == loaded.translator.decoding.beam


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"text": "I love you.", "extra": 1}, 422, "Parameter `extra` is not a valid key-word argument."),
        ({"beam": 2}, 422, "No value provided for required argument: text."),
    ],
)
def test_call_v2_with_a_wrong_key_is_a_4xx_with_one_line(space, body, status, message):
    url, _, _, _ = space
    r = post(url, "/call/v2/translate", json=body)
    assert r.status_code == status and r.json() == {"detail": message}
    r = post(url, "/call/v2/no-such-endpoint", json={"text": "x"})
    assert r.status_code == 404 and "\n" not in r.text


def test_the_app_process_logs_refusals_in_one_line_and_cleans_its_temp_folder(zh_weights, tmp_path):
    temp = tmp_path / "gradio-temp"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = temp / f"{FOLDER_PREFIX}{dead.pid}"
    stale.mkdir(parents=True)
    (stale / "trace-old.json").write_text("{}")
    log = tmp_path / "app.log"
    app = AppProcess(
        ["--weights", str(zh_weights), "--threads", "1"], log=log, env={"GRADIO_TEMP_DIR": str(temp)}
    )
    try:
        app.wait()
        assert not stale.exists()  # removed at start
        for data in (["   ", 1], ["I love you.", 9]):
            kind, payload = call(app.url, "translate", data)
            assert kind == "error" and payload["error"]
        session = new_session()
        fns = fn_indices(app.url)
        run = event_data(app.url, "run", source_text="I love you.", beam=1)
        for name, data in (("run", run), ("prepare_download", [None])):
            assert queue_event(app.url, fns[name], data, session)[0]["success"]
        ours = temp / f"{FOLDER_PREFIX}{app.proc.pid}"
        assert len(list(ours.glob("trace-*.json"))) == 1
        assert not [
            p for p in temp.rglob("trace-*.json") if p.parent != ours
        ]  # one copy: Gradio did not copy it
    finally:
        app.stop()
    assert not ours.exists()  # removed at shutdown (SIGTERM)
    text = log.read_text()
    assert "Traceback" not in text
    refused = [line for line in text.splitlines() if "refused" in line]
    assert len(refused) == 2 and "Type an English sentence" in refused[0] and "beam must be" in refused[1]


def test_an_unwritable_gradio_temp_dir_is_one_line_and_exit_2(tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    proc = subprocess.run(
        [sys.executable, "app.py"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
        env={**os.environ, "GRADIO_TEMP_DIR": str(not_a_folder / "gradio")},
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith("error: GRADIO_TEMP_DIR=") and "writable folder" in lines[0]
    )


@pytest.mark.skipif(not (SHIPPED / "config.json").is_file(), reason="no model shipped in weights/")
def test_three_sentences_of_thirty_words_are_neither_cut_nor_refused():
    from explorer.policy import CAPS

    text = (
        "My sister and I went to the old market yesterday. We bought some fresh green vegetables for dinner. "
        "Then we walked home together along the river before it got dark."
    )
    assert len(text.split()) == 30
    shipped = load_translator(str(SHIPPED))
    _, source, notices = prepare(
        shipped.translator, text, **{k: v for k, v in CAPS.items() if k != "max_target_tokens"}
    )
    assert notices == [] and source.words[-3:] == ["dark", ".", "</s>"]
    tr = capped_trace(shipped, text, MAX_BEAM)
    assert not any("maximum" in n for n in tr.notices) and len(tr.target_tokens) < MAX_TARGET_TOKENS
