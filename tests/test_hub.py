"""The Hub round trip with the real huggingface_hub client against a local Hub look-alike (tests/hub_server.py):
push a weights folder, download it back, load it offline, and fail clearly (never leaking the token)."""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from hub_server import HubServer
from huggingface_hub import constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import RepositoryNotFoundError

import explorer.loading as loading
from training.__main__ import build_parser, main
from training.files import WEIGHT_FILES
from training.hub import HubError, push, push_files
from training.text import BOS_ID
from training.translator import WeightsError, load_weights_dir

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_testsecret123"
REPO = "alice/en-zh"
SENTENCES = ["I love you.", "Where is the book?", "Thank you.", "She is my sister.", "I love tea."]


@pytest.fixture(autouse=True)
def hermetic_hub_client(monkeypatch, tmp_path):
    """No ambient token, no request to the real Hub, nothing written to ~/.cache.

    huggingface_hub reads HF_* variables once, at import, so in-process tests set its constants
    instead (what HF_HUB_DISABLE_TELEMETRY=1 would do) and pass cache_dir=. Telemetry matters: building
    the first request's user agent fetches {HF_ENDPOINT}/api/agent-harnesses, i.e. huggingface.co
    even when `endpoint=` points elsewhere.
    """
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    # hf_xet (used by upload_folder when installed) reads these itself when its session starts, and
    # writes logs there: keep them out of ~/.cache.
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home-env"))
    monkeypatch.setenv("HF_XET_CACHE", str(tmp_path / "xet"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-login" / "token"))


@pytest.fixture
def hub(tmp_path):
    server = HubServer(tmp_path / "hub", tokens={TOKEN}).start()
    yield server
    server.stop()


@pytest.fixture
def closed_url():
    """An address where nothing listens: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def silent_url():
    """An address that accepts connections and never answers (a hung Hub or proxy)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []

    def accept_forever():
        with contextlib.suppress(OSError):  # the socket is closed at teardown
            while True:
                accepted.append(server.accept())

    threading.Thread(target=accept_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    for conn, _ in accepted:
        conn.close()
    server.close()


@pytest.fixture
def bundled(monkeypatch, tmp_path, zh_weights):
    """The real weights/ is empty for now: stand a copy of the test model in for it."""
    path = tmp_path / "bundle" / "weights"
    shutil.copytree(zh_weights, path)
    monkeypatch.setattr(loading, "BUNDLED_WEIGHTS", path)
    return path


def copy_weights(src: Path, dst: Path, beam: int | None = None) -> Path:
    """A copy of a weights folder, optionally with another default beam (a change the loader makes visible)."""
    shutil.copytree(src, dst)
    if beam is not None:
        config = json.loads((dst / "config.json").read_text())
        config["decoding"]["beam"] = beam
        (dst / "config.json").write_text(json.dumps(config))
    return dst


def logits_of(translator, sentences):
    src = torch.nn.utils.rnn.pad_sequence(
        [torch.tensor(translator.prepare(s).ids) for s in sentences], batch_first=True
    )
    gen = torch.Generator().manual_seed(0)
    tgt = torch.randint(4, translator.model.cfg.tgt_vocab_size, (len(sentences), 6), generator=gen)
    tgt[:, 0] = BOS_ID
    with torch.no_grad():
        return translator.model(src, tgt)[0]


def run_cli(tmp_path, *args, **env):
    """`python -m training ...` in a fresh process, so huggingface_hub reads HF_* at import as it does for users."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    base.update(HF_HOME=str(tmp_path / "hf-home"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **env)
    return subprocess.run(
        [sys.executable, "-m", "training", *args],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_push_then_download_translates_exactly_like_the_local_folder(hub, zh_weights, tmp_path, capsys):
    result = push(zh_weights, REPO, token=TOKEN, endpoint=hub.url)

    repo = hub.repos[REPO]
    head = repo.history("main")
    assert [c.message for c in head[1:]] == ["initial commit"]  # exactly one commit was added
    assert [r for r in hub.requests if "/commit/" in r] == [f"POST /api/models/{REPO}/commit/main"]
    assert result.commit_oid == head[0].oid and result.commit_url == f"{hub.url}/{REPO}/commit/{head[0].oid}"
    assert result.commit_url in capsys.readouterr().out
    assert sorted(head[0].files) == sorted([".gitattributes", *push_files(zh_weights)])
    for name in push_files(zh_weights):
        assert hub.read(head[0].files[name]) == (zh_weights / name).read_bytes(), name
    assert hub.auth_seen and set(hub.auth_seen) == {f"Bearer {TOKEN}"}
    assert not repo.private

    cache = tmp_path / "cache"
    path = Path(snapshot_download(REPO, allow_patterns=list(WEIGHT_FILES), cache_dir=cache, endpoint=hub.url))
    assert path == cache / "models--alice--en-zh" / "snapshots" / head[0].oid
    assert sorted(p.name for p in path.iterdir()) == sorted(WEIGHT_FILES)  # no README, no .gitattributes
    card = hf_hub_download(REPO, "README.md", cache_dir=cache, endpoint=hub.url)
    assert Path(card).read_bytes() == (zh_weights / "README.md").read_bytes()

    local, remote = load_weights_dir(zh_weights), load_weights_dir(path)
    assert (
        local.translate(SENTENCES)[0] == "我爱你。"
    )  # the model is a real one, so equality below means something
    assert remote.translate(SENTENCES) == local.translate(SENTENCES)
    assert remote.translate(SENTENCES, beam=1) == local.translate(SENTENCES, beam=1)
    assert torch.equal(logits_of(remote, SENTENCES), logits_of(local, SENTENCES))

    loaded = loading.resolve(repo_id=REPO, endpoint=hub.url, cache_dir=cache)
    assert loaded.model_id == f"{REPO}@main" and loaded.notice == ""
    assert loaded.translator.translate(SENTENCES) == local.translate(SENTENCES)


def test_push_to_a_branch_and_download_that_revision(hub, zh_weights, tmp_path):
    push(zh_weights, REPO, token=TOKEN, endpoint=hub.url)
    greedy = copy_weights(zh_weights, tmp_path / "greedy", beam=1)
    push(greedy, REPO, revision="greedy", token=TOKEN, endpoint=hub.url, commit_message="greedy decoding")
    repo = hub.repos[REPO]
    assert [c.message for c in repo.history("greedy")] == [
        "greedy decoding",
        *[c.message for c in repo.history("main")],
    ]
    assert len(repo.history("main")) == 2  # main untouched

    push(greedy, REPO, revision="greedy", token=TOKEN, endpoint=hub.url)  # same files again: no empty commit
    assert len(repo.history("greedy")) == 3

    cache = tmp_path / "cache"
    on_branch = loading.resolve(repo_id=REPO, revision="greedy", endpoint=hub.url, cache_dir=cache)
    on_main = loading.resolve(repo_id=REPO, endpoint=hub.url, cache_dir=cache)
    assert on_branch.model_id == f"{REPO}@greedy"
    assert on_branch.translator.decoding.beam == 1 and on_main.translator.decoding.beam == 4
    assert (cache / "models--alice--en-zh" / "refs" / "greedy").read_text() == repo.branches["greedy"]


def test_private_push_is_invisible_without_the_token(hub, zh_weights, tmp_path):
    push(zh_weights, REPO, private=True, token=TOKEN, endpoint=hub.url)
    assert hub.repos[REPO].private
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download(REPO, cache_dir=tmp_path / "anon", endpoint=hub.url, token=False)
    path = snapshot_download(
        REPO, allow_patterns=["config.json"], cache_dir=tmp_path / "c", endpoint=hub.url, token=TOKEN
    )
    assert (Path(path) / "config.json").read_bytes() == (zh_weights / "config.json").read_bytes()


def test_cli_dry_run_lists_the_files_and_needs_no_network(zh_weights, tmp_path, closed_url):
    folder = copy_weights(zh_weights, tmp_path / "w")
    (folder / "notes.txt").write_text("not for the Hub")
    # Nothing listens at HF_ENDPOINT and there is no token: any network use would fail the command.
    proc = run_cli(tmp_path, "push", str(folder), "--repo-id", REPO, "--dry-run", HF_ENDPOINT=closed_url)
    assert proc.returncode == 0, proc.stderr
    assert "'I love you.' -> '我爱你。'" in proc.stdout
    for name in push_files(folder):
        assert f"{name}" in proc.stdout and f"{(folder / name).stat().st_size:,} bytes" in proc.stdout
    assert "notes.txt" not in proc.stdout
    assert f"{closed_url}/{REPO} (branch main)" in proc.stdout and "nothing was sent" in proc.stdout


def test_cli_push_prints_the_commit_url_and_never_the_token(hub, zh_weights, tmp_path):
    proc = run_cli(
        tmp_path,
        "push",
        str(zh_weights),
        "--repo-id",
        REPO,
        "--revision",
        "v1",
        HF_ENDPOINT=hub.url,
        HF_TOKEN=TOKEN,
    )
    assert proc.returncode == 0, proc.stderr
    oid = hub.repos[REPO].branches["v1"]
    assert f"{hub.url}/{REPO}/commit/{oid}" in proc.stdout
    assert f"Bearer {TOKEN}" in hub.auth_seen  # the token was used...
    assert TOKEN not in proc.stdout + proc.stderr  # ...and not shown


def test_cli_errors_are_one_line_and_scrubbed(hub, zh_weights, monkeypatch, capsys):
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)  # what HF_ENDPOINT does at import
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    # A Hub (or proxy) that echoes the Authorization header in its error: the message must not.
    hub.fail_next = (403, "token {auth} may not write to alice")
    assert main(["push", str(zh_weights), "--repo-id", REPO]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: the Hub at") and err.count("\n") == 1
    assert "403" in err and "may not write" in err and "Bearer ***" in err
    assert TOKEN not in out + err and "testsecret" not in out + err

    monkeypatch.setenv("HF_TOKEN", "hf_wrongtoken456")
    assert main(["push", str(zh_weights), "--repo-id", REPO]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "401" in err and "hf auth login" in err and "hf_wrongtoken456" not in err

    monkeypatch.delenv("HF_TOKEN")
    assert main(["push", str(zh_weights), "--repo-id", REPO]) == 2
    assert (
        capsys.readouterr().err
        == "error: no Hugging Face token: set HF_TOKEN or run `hf auth login` (a token with write access)\n"
    )


def test_push_to_an_unreachable_hub_says_so(zh_weights, closed_url):
    with pytest.raises(HubError) as e:
        push(zh_weights, REPO, token=TOKEN, endpoint=closed_url)
    msg = str(e.value)
    assert (
        msg.startswith(f"could not reach the Hub at {closed_url}:")
        and "HF_ENDPOINT" in msg
        and "\n" not in msg
    )


def test_a_broken_folder_fails_before_any_network(hub, zh_weights, tmp_path, capsys):
    folder = copy_weights(zh_weights, tmp_path / "w")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated"):
        push(folder, REPO, token=TOKEN, endpoint=hub.url)
    assert hub.requests == []
    assert main(["push", str(folder), "--repo-id", "no-namespace"]) == 2
    assert capsys.readouterr().err == "error: --repo-id must look like USER/NAME, got 'no-namespace'\n"


def test_offline_loader_uses_the_cache(hub, zh_weights, tmp_path):
    push(zh_weights, REPO, token=TOKEN, endpoint=hub.url)
    home = tmp_path / "hf-home"
    loading.resolve(
        repo_id=REPO, endpoint=hub.url, cache_dir=home / "hub"
    )  # fills the cache, as a first start would
    seen = len(hub.requests)
    code = f"""
import json, torch
torch.set_num_threads(1)
import explorer.loading
from explorer.loading import resolve
from training.translator import WeightsError
explorer.loading.BUNDLED_WEIGHTS = explorer.loading.Path({str(tmp_path / "no-bundle")!r})
m = resolve(repo_id={REPO!r})
try:
    resolve(repo_id="alice/never-downloaded")
    other = "loaded?!"
except WeightsError as e:
    other = str(e)
print(json.dumps({{"id": m.model_id, "notice": m.notice, "out": m.translator.translate({SENTENCES!r}), "other": other}}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_HOME=str(home), HF_HUB_OFFLINE="1", HF_ENDPOINT=hub.url, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["id"] == f"{REPO}@main" and got["notice"] == ""
    assert got["out"] == load_weights_dir(zh_weights).translate(SENTENCES)
    assert "offline mode is on (HF_HUB_OFFLINE=1)" in got["other"] and "no cached copy" in got["other"]
    assert "no bundled weights" in got["other"]  # nothing to fall back to: an error, not a crash
    assert len(hub.requests) == seen  # offline means offline


def test_unreachable_hub_uses_the_cached_copy(hub, zh_weights, tmp_path, closed_url, capsys):
    push(zh_weights, REPO, token=TOKEN, endpoint=hub.url)
    cache = tmp_path / "cache"
    loading.resolve(repo_id=REPO, endpoint=hub.url, cache_dir=cache)
    loaded = loading.resolve(repo_id=REPO, endpoint=closed_url, cache_dir=cache)
    assert loaded.model_id == f"{REPO}@main" and loaded.notice == ""
    assert loaded.translator.translate(SENTENCES[:1]) == ["我爱你。"]
    assert "warning" not in capsys.readouterr().err


def test_a_failed_transfer_falls_back_to_the_last_complete_cached_copy(hub, zh_weights, tmp_path, capsys):
    push(zh_weights, REPO, token=TOKEN, endpoint=hub.url)
    cache = tmp_path / "cache"
    first = loading.resolve(repo_id=REPO, endpoint=hub.url, cache_dir=cache)
    old_head = hub.repos[REPO].branches["main"]
    greedy = copy_weights(zh_weights, tmp_path / "greedy", beam=1)
    push(greedy, REPO, token=TOKEN, endpoint=hub.url)
    capsys.readouterr()

    hub.fail_downloads = {"config.json"}  # the listing of the new commit works, its config.json does not
    loaded = loading.resolve(repo_id=REPO, endpoint=hub.url, cache_dir=cache)
    # huggingface_hub moved refs/main to the new commit before the transfer failed...
    assert (cache / "models--alice--en-zh" / "refs" / "main").read_text() == hub.repos[REPO].branches["main"]
    # ...and the loader still found the previous complete copy, and says so.
    assert loaded.model_id == first.model_id and loaded.translator.decoding.beam == 4
    assert (
        "answered 500" in loaded.notice and f"using the cached copy (commit {old_head[:12]})" in loaded.notice
    )
    assert capsys.readouterr().err.endswith(f"\nwarning: {loaded.notice}\n")

    hub.fail_downloads = set()
    assert loading.resolve(repo_id=REPO, endpoint=hub.url, cache_dir=cache).translator.decoding.beam == 1


def test_unreachable_hub_and_empty_cache_falls_back_to_the_bundled_weights(
    bundled, tmp_path, closed_url, capsys
):
    loaded = loading.resolve(repo_id=REPO, endpoint=closed_url, cache_dir=tmp_path / "empty")
    assert loaded.model_id == "weights/ (bundled)"
    assert (
        f"Could not get {REPO}@main from the Hugging Face Hub (could not reach the Hub at {closed_url}"
        in loaded.notice
    )
    assert "no cached copy" in loaded.notice and "using the bundled weights in weights/" in loaded.notice
    assert capsys.readouterr().err == f"warning: {loaded.notice}\n"
    assert loaded.translator.translate(["I love you."]) == ["我爱你。"]


def test_a_hub_that_never_answers_times_out_to_the_bundled_weights(bundled, tmp_path, silent_url):
    started = time.monotonic()
    loaded = loading.resolve(repo_id=REPO, endpoint=silent_url, cache_dir=tmp_path / "empty", timeout=1.5)
    assert time.monotonic() - started < 30  # without a timeout this call never returns
    assert loaded.model_id == "weights/ (bundled)"
    assert f"Could not get {REPO}@main from the Hugging Face Hub" in loaded.notice
    assert loaded.translator.translate(["I love you."]) == ["我爱你。"]


@pytest.mark.parametrize(
    "damage,message",
    [
        ("truncate", "unreadable or truncated safetensors file"),
        ("vocab", "but config.json expects"),
        ("card only", "has no model.safetensors, config.json, vocab_src.json, vocab_tgt.json"),
    ],
)
def test_a_corrupt_repo_is_a_clear_error_not_a_fallback(hub, zh_weights, bundled, tmp_path, damage, message):
    files = {name: (zh_weights / name).read_bytes() for name in push_files(zh_weights)}
    if damage == "truncate":
        files["model.safetensors"] = files["model.safetensors"][:1000]
    elif damage == "vocab":
        vocab = json.loads(files["vocab_tgt.json"])
        vocab["tokens"] = vocab["tokens"][:-1]
        files["vocab_tgt.json"] = json.dumps(vocab).encode()
    else:
        files = {"README.md": files["README.md"]}
    hub.create_repo("alice/broken")
    hub.commit("alice/broken", "main", "upload", files)
    # `bundled` holds a working model, so a silent fallback would succeed: the test shows there is none.
    with pytest.raises(WeightsError) as e:
        loading.resolve(repo_id="alice/broken", endpoint=hub.url, cache_dir=tmp_path / "cache")
    msg = str(e.value)
    assert msg.startswith("alice/broken@main ") and message in msg and "\n" not in msg
    # No safetensors/torch exception chained on: the message is the whole story.
    assert e.value.__cause__ is None and (e.value.__context__ is None or e.value.__suppress_context__)


def test_a_missing_repo_or_revision_is_named(hub, zh_weights, bundled, tmp_path, monkeypatch):
    loaded = loading.resolve(repo_id="alice/nope", endpoint=hub.url, cache_dir=tmp_path / "c")
    assert (
        loaded.notice.startswith(
            f"Could not get alice/nope@main from the Hugging Face Hub (repository not found on {hub.url}"
        )
        and "hf auth login" in loaded.notice
    )
    push(zh_weights, REPO, token=TOKEN, endpoint=hub.url)
    loaded = loading.resolve(repo_id=REPO, revision="v9", endpoint=hub.url, cache_dir=tmp_path / "c")
    assert (
        f"Could not get {REPO}@v9 from the Hugging Face Hub (revision not found on {hub.url})"
        in loaded.notice
    )

    monkeypatch.setattr(loading, "BUNDLED_WEIGHTS", tmp_path / "empty")
    with pytest.raises(
        WeightsError,
        match=r"^could not get alice/nope@main from the Hugging Face Hub: repository "
        r"not found .*; and there are no bundled weights in ",
    ):
        loading.resolve(repo_id="alice/nope", endpoint=hub.url, cache_dir=tmp_path / "c")


def test_push_options_have_help_texts():
    sub = build_parser()._subparsers._group_actions[0].choices["push"]
    for action in sub._actions:
        if action.dest != "help":
            assert action.help and len(action.help) > 10, action.option_strings or action.dest
    text = sub.format_help()
    assert all(s in text for s in ("HF_TOKEN", "hf auth login", "HF_ENDPOINT", "--dry-run", "--private"))


def test_credentials_in_the_hub_url_are_never_shown(bundled, tmp_path, closed_url, capsys):
    endpoint = closed_url.replace("http://", "http://hubuser:s3cr3t-pw@")
    loaded = loading.resolve(repo_id=REPO, endpoint=endpoint, cache_dir=tmp_path / "empty")
    assert loaded.model_id == "weights/ (bundled)"
    shown = loaded.notice + capsys.readouterr().err
    assert "s3cr3t-pw" not in shown and "hubuser" not in shown
    assert closed_url.replace("http://", "http://***@") in loaded.notice


def test_redact_url_hides_userinfo_wherever_a_url_appears():
    from training.hub import redact_url

    text = "GET https://u:p@hub.example/api and socks5h://user@proxy:1080, not mail me@example.com"
    assert (
        redact_url(text)
        == "GET https://***@hub.example/api and socks5h://***@proxy:1080, not mail me@example.com"
    )
