"""A tiny Hugging Face Hub look-alike for tests, spoken to by the real huggingface_hub 2.4 client over HTTP.

Implements, for model repos only, what `create_repo`, `create_branch`, `upload_folder`,
`snapshot_download` and `hf_hub_download` call:

    POST      /api/repos/create                         create a repo (409 if it exists), with an initial commit
    POST      /api/validate-yaml                        model-card check upload_folder makes when README.md is sent
    POST      /api/models/{repo}/branch/{branch}        create a branch from main or "startingPoint" (409 if it exists)
    POST      /api/models/{repo}/preupload/{rev}        upload mode of each file: always "regular", never LFS/Xet
    POST      /api/models/{repo}/commit/{rev}           NDJSON commit: a header line, then base64 "file" / "deletedFile"
    GET       /api/models/{repo}[/revision/{rev}]       repo info: "sha" (the commit) and "siblings"
    GET       /api/models/{repo}/tree/{rev}             file listing (always recursive, one page)
    HEAD, GET /{repo}/resolve/{rev}/{path}              a file, with X-Repo-Commit, ETag and Content-Length

Errors carry the X-Error-Code header (RepoNotFound, RevisionNotFound, EntryNotFound) the client maps
to its exception types. Writes need `Authorization: Bearer <token>` (and, if the server was given
tokens, one of those); private repos are invisible without it. Every Authorization header received
is recorded in `auth_seen`; `fail_next` makes the next write answer an error whose message may echo
that header (to test that callers scrub tokens from what they print); `fail_downloads` makes file
transfers fail after a successful listing.

Anything else answers 404, e.g. the /api/agent-harnesses request the client makes for its user agent.
Not implemented: LFS and Xet transfers, pull requests, tags, pagination, copy operations, real
model-card validation (only an unclosed front matter is refused), token scopes, gated repos,
dataset/space repos, chunked request bodies, Range requests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


def git_blob_id(data: bytes) -> str:
    """The id git (and the Hub's "oid" field, and huggingface_hub's no-op detection) gives a file's content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    oid: str
    message: str
    parent: str | None
    files: dict[str, str]  # path -> blob id (content lives in HubServer.blob_dir)


@dataclass
class Repo:
    private: bool
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit oid
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, rev: str) -> Commit | None:
        oid = self.branches.get(rev, rev)
        return self.commits.get(oid)

    def history(self, branch: str) -> list[Commit]:
        out, commit = [], self.commits.get(self.branches.get(branch, ""))
        while commit:
            out.append(commit)
            commit = self.commits.get(commit.parent or "")
        return out


class HttpError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict | None = None,
        extra: dict | None = None,
    ):
        super().__init__(message)
        self.status, self.code, self.headers, self.extra = status, code, headers or {}, extra or {}


class HubServer:
    """Start with `start()`, stop with `stop()`; `url` is the value for HF_ENDPOINT / endpoint=."""

    def __init__(self, root: Path, tokens: set[str] | None = None):
        self.blob_dir = Path(root) / "blobs"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.tokens = tokens  # None: any non-empty token may write
        self.repos: dict[str, Repo] = {}
        self.auth_seen: list[str] = []
        self.requests: list[str] = []  # "METHOD /path", in order
        self.fail_next: tuple[int, str] | None = None  # (status, message; "{auth}" is replaced by the header)
        self.fail_downloads: set[str] = (
            set()
        )  # file names whose GET (not HEAD) answers 500, as a failing CDN would
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # A short poll interval makes stop() quick; shutdown() waits for the loop to notice.
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    # -- state, also used by tests to seed repos without the client --

    def create_repo(self, repo_id: str, private: bool = False) -> Repo:
        repo = self.repos[repo_id] = Repo(private)
        self.commit(
            repo_id,
            "main",
            "initial commit",
            {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"},
        )
        return repo

    def commit(self, repo_id: str, branch: str, message: str, files: dict[str, bytes | None]) -> Commit:
        """Add (bytes) or delete (None) files on a branch; returns the new commit."""
        repo = self.repos[repo_id]
        parent = repo.resolve(branch)
        tree = dict(parent.files) if parent else {}
        for path, data in files.items():
            if data is None:
                tree.pop(path, None)
            else:
                tree[path] = git_blob_id(data)
                (self.blob_dir / tree[path]).write_bytes(data)
        seed = json.dumps([parent.oid if parent else None, message, sorted(tree.items()), len(repo.commits)])
        commit = Commit(
            hashlib.sha1(seed.encode()).hexdigest(), message, parent.oid if parent else None, tree
        )
        repo.commits[commit.oid] = commit
        repo.branches[branch] = commit.oid
        return commit

    def read(self, blob_id: str) -> bytes:
        return (self.blob_dir / blob_id).read_bytes()


def _handler_for(hub: HubServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects; every answer sets Content-Length

        def log_message(self, *args) -> None:  # quiet: pytest shows the assertion, not an access log
            pass

        def do_GET(self):
            self._dispatch("GET")

        def do_HEAD(self):
            self._dispatch("HEAD")

        def do_POST(self):
            self._dispatch("POST")

        def _dispatch(self, method: str) -> None:
            auth = self.headers.get("Authorization")
            path = urlsplit(self.path).path
            with hub.lock:
                hub.requests.append(f"{method} {path}")
                if auth:
                    hub.auth_seen.append(auth)
            body = self._read_body() if method == "POST" else b""
            try:
                with hub.lock:
                    try:
                        status, payload, headers = self._route(
                            method, [unquote(p) for p in path.split("/")[1:]], body, auth
                        )
                    except (
                        ValueError,
                        KeyError,
                    ) as e:  # a malformed body: 400, which the client does not retry
                        raise HttpError(400, f"bad request: {type(e).__name__}: {e}") from None
            except HttpError as e:
                status, payload, headers = e.status, {"error": str(e), **e.extra}, dict(e.headers)
                if e.code:
                    headers["X-Error-Code"] = e.code
                headers["X-Error-Message"] = str(e)
            self._send(method, status, payload, headers)

        def _read_body(self) -> bytes:
            # huggingface_hub sends bytes or JSON bodies, always with a Content-Length (never chunked).
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, method: str, status: int, payload, headers: dict) -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            if not isinstance(payload, bytes):
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data)

        # -- routing --

        def _route(self, method: str, parts: list[str], body: bytes, auth: str | None):
            if method == "POST" and parts == ["api", "validate-yaml"]:
                return self._validate_yaml(json.loads(body)["content"])
            if method == "POST":
                self._check_write(auth)
            if method == "POST" and parts == ["api", "repos", "create"]:
                return self._create_repo(json.loads(body))
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                repo_id, action, rest = "/".join(parts[2:4]), (parts[4:5] or [""])[0], parts[5:]
                repo = self._repo(repo_id, auth)
                if method == "GET" and action in ("", "revision"):
                    return self._info(repo_id, repo, "/".join(rest) or "main")
                if method == "GET" and action == "tree" and rest:
                    return self._tree(repo, rest[0])
                if method == "POST" and action == "branch" and rest:
                    return self._branch(repo, "/".join(rest), json.loads(body or b"{}"))
                if method == "POST" and action == "preupload" and rest:
                    return self._preupload(repo, rest[0], json.loads(body))
                if method == "POST" and action == "commit" and rest:
                    return self._commit(repo_id, repo, rest[0], body)
            if method in ("GET", "HEAD") and len(parts) >= 5 and parts[2] == "resolve":
                repo_id = "/".join(parts[:2])
                return self._resolve(method, self._repo(repo_id, auth), parts[3], "/".join(parts[4:]))
            raise HttpError(404, f"no such endpoint: {method} /{'/'.join(parts)}")

        def _check_write(self, auth: str | None) -> None:
            token = (auth or "").removeprefix("Bearer ").strip()
            if not token or (hub.tokens is not None and token not in hub.tokens):
                raise HttpError(401, "Invalid credentials in Authorization header")
            if hub.fail_next:
                (status, message), hub.fail_next = hub.fail_next, None
                raise HttpError(status, message.replace("{auth}", auth or ""))

        def _repo(self, repo_id: str, auth: str | None) -> Repo:
            repo = hub.repos.get(repo_id)
            token = (auth or "").removeprefix("Bearer ").strip()
            if repo is None or (repo.private and not (token and (hub.tokens is None or token in hub.tokens))):
                raise HttpError(404, f"Repository {repo_id} not found", "RepoNotFound")
            return repo

        def _commit_of(self, repo: Repo, rev: str) -> Commit:
            commit = repo.resolve(rev)
            if commit is None:
                raise HttpError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            return commit

        # -- endpoints --

        def _create_repo(self, payload: dict):
            repo_id = f"{payload['organization']}/{payload['name']}"
            if payload.get("type", "model") != "model":
                raise HttpError(400, "this test hub only has model repos")
            if repo_id in hub.repos:  # create_repo(exist_ok=True) reads "url" from this 409 answer too
                raise HttpError(
                    409, "You already created this model repo", extra={"url": f"{hub.url}/{repo_id}"}
                )
            hub.create_repo(repo_id, private=payload.get("visibility") == "private")
            return 200, {"url": f"{hub.url}/{repo_id}", "name": repo_id}, {}

        def _validate_yaml(self, readme: str):
            # The real check parses the model-card metadata; an unclosed front matter is enough to exercise the path.
            if readme.startswith("---") and "\n---" not in readme[3:]:
                raise HttpError(400, "README.md metadata: the YAML front matter is not closed by '---'")
            return 200, {"errors": [], "warnings": []}, {}

        def _info(self, repo_id: str, repo: Repo, rev: str):
            commit = self._commit_of(repo, rev)
            siblings = [{"rfilename": p} for p in sorted(commit.files)]
            return 200, {"id": repo_id, "sha": commit.oid, "private": repo.private, "siblings": siblings}, {}

        def _tree(self, repo: Repo, rev: str):
            commit = self._commit_of(repo, rev)
            entries = [
                {"type": "file", "path": p, "oid": b, "size": (hub.blob_dir / b).stat().st_size}
                for p, b in sorted(commit.files.items())
            ]
            return 200, entries, {}

        def _branch(self, repo: Repo, branch: str, payload: dict):
            if branch in repo.branches:
                raise HttpError(409, f"Reference already exists: refs/heads/{branch}")
            repo.branches[branch] = self._commit_of(repo, payload.get("startingPoint", "main")).oid
            return 200, {}, {}

        def _preupload(self, repo: Repo, rev: str, payload: dict):
            commit = self._commit_of(repo, rev)
            # "oid" lets the client drop files that did not change (no empty commits).
            files = [
                {
                    "path": f["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": commit.files.get(f["path"]),
                }
                for f in payload["files"]
            ]
            return 200, {"files": files, "commitOid": commit.oid}, {}

        def _commit(self, repo_id: str, repo: Repo, rev: str, body: bytes):
            self._commit_of(repo, rev)
            if rev not in repo.branches:
                raise HttpError(400, f"{rev} is not a branch")
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            if not lines or lines[0]["key"] != "header":
                raise HttpError(400, "the first NDJSON line must be the commit header")
            files: dict[str, bytes | None] = {}
            for line in lines[1:]:
                value = line["value"]
                if line["key"] == "file" and value.get("encoding") == "base64":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif line["key"] == "deletedFile":
                    files[value["path"]] = None
                else:
                    raise HttpError(
                        400, f"unsupported commit operation {line['key']!r} (this hub has no LFS)"
                    )
            commit = hub.commit(repo_id, rev, lines[0]["value"]["summary"], files)
            url = f"{hub.url}/{repo_id}/commit/{commit.oid}"
            return (
                200,
                {"success": True, "commitOid": commit.oid, "commitUrl": url, "pullRequestUrl": None},
                {},
            )

        def _resolve(self, method: str, repo: Repo, rev: str, path: str):
            commit = self._commit_of(repo, rev)
            blob = commit.files.get(path)
            if blob is None:
                raise HttpError(
                    404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.oid}
                )
            if method == "GET" and path in hub.fail_downloads:
                raise HttpError(500, "storage backend unavailable")
            return (
                200,
                hub.read(blob),
                {
                    "X-Repo-Commit": commit.oid,
                    "ETag": f'"{blob}"',
                    "Content-Type": "application/octet-stream",
                },
            )

    return Handler
