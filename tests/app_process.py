"""Run `python app.py` as a real process on 127.0.0.1 (browser test, load script, benchmarks)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"  # Debian's; no browser is downloaded
# Headless, software rendering, nothing from the network: for the browser test and the browser benchmark.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
FIRST_MAP = "#attention-plot .js-plotly-plot .heatmaplayer"  # drawn once the first visit's example is
E2E_WAIT_MS = 60000  # one step on a loaded 2-core machine can take tens of seconds


def require_browser() -> None:
    """Skip the calling test module without Playwright and Debian's chromium; under CI that is an error."""
    import importlib.util

    if importlib.util.find_spec("playwright") is None or not Path(CHROMIUM).exists():
        reason = "needs Python playwright and /usr/bin/chromium (apt-get install chromium fonts-noto-cjk)"
        if os.environ.get("CI"):
            raise RuntimeError(f"CI must run the browser test: {reason}")
        import pytest

        pytest.skip(reason, allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status_mb(pid: int, field: str) -> float:
    """A memory figure from /proc/PID/status: "VmRSS" (now) or "VmHWM" (peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class AppProcess:
    """`python app.py ARGS` on a free port; `wait()` returns once the page is served."""

    def __init__(self, args: list[str], log: Path | None = None, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        extra_env = env
        env = {
            **os.environ,
            "GRADIO_SERVER_PORT": str(self.port),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("GRADIO_SERVER_NAME", None)  # the app must default to 127.0.0.1 by itself
        env.update(extra_env or {})
        self.log = log
        out = open(log, "w") if log else subprocess.DEVNULL
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "app.py", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
        )

    def wait(self, timeout: float = 120) -> float:
        """Seconds from process start until the page answered."""
        while True:
            try:
                urllib.request.urlopen(self.url, timeout=2)
                return time.perf_counter() - self.started
            except OSError:
                if self.proc.poll() is not None or time.perf_counter() - self.started > timeout:
                    detail = self.log.read_text()[-3000:] if self.log else f"exit code {self.proc.poll()}"
                    self.stop()
                    raise RuntimeError(f"the app did not start: {detail}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a TCP socket listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                if len(raw) == 4:
                    found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:  # four little-endian 32-bit words
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def dir_size(path: Path) -> tuple[int, int]:
    """(bytes, files) under `path`, counting files that vanish while it is walked as gone."""
    total = files = 0
    for root, _, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
                files += 1
            except OSError:
                pass
    return total, files


def fn_indices(url: str) -> dict[str, int]:
    """Event name (api_name; a private UI event's is its function's name) → fn_index, from /config."""
    import httpx

    config = httpx.get(url.rstrip("/") + "/config", timeout=30).json()
    return {d["api_name"]: d["id"] for d in config["dependencies"] if d.get("api_name")}


def event_data(url: str, name: str, **values) -> list:
    """The inputs of the private event `name` as the page first shows them (from /config), with
    `values` by elem_id ("source-text", "kind", …; "-" for "_" in the names), in the order the event
    takes them: a test of the HTTP queue that does not break when a tab adds a control."""
    import httpx

    config = httpx.get(url.rstrip("/") + "/config", timeout=30).json()
    comps = {c["id"]: c for c in config["components"]}
    dep = next(d for d in config["dependencies"] if d.get("api_name") == name)
    data = []
    for i in dep["inputs"]:
        props = comps[i].get("props", {})
        key = (props.get("elem_id") or "").replace("-", "_")
        data.append(values.pop(key) if key in values else props.get("value"))
    if values:
        raise KeyError(f"{name} takes no input with elem_id {sorted(values)}")
    return data


def output_index(url: str, name: str, elem_id: str) -> int:
    """Where the private event `name` puts the component `elem_id` among its outputs (from /config)."""
    import httpx

    config = httpx.get(url.rstrip("/") + "/config", timeout=30).json()
    comps = {c["id"]: c for c in config["components"]}
    dep = next(d for d in config["dependencies"] if d.get("api_name") == name)
    return next(
        k for k, i in enumerate(dep["outputs"]) if comps[i].get("props", {}).get("elem_id") == elem_id
    )


def queue_event(
    url: str, fn_index: int, data: list, session_hash: str, timeout: float = 120
) -> tuple[dict, int]:
    """Run one event the way the browser does (POST queue/join, then read queue/data's event stream).

    Returns (the final message, bytes of the stream), or ({"status", "detail"}, 0) when joining is refused.
    The body is sent as ASCII JSON, so strings may hold characters UTF-8 cannot (lone surrogates).
    """
    import json

    import httpx

    base = url.rstrip("/") + "/gradio_api"
    body = json.dumps({"data": data, "fn_index": fn_index, "session_hash": session_hash, "event_data": None})
    with httpx.Client(timeout=timeout) as c:
        r = c.post(base + "/queue/join", content=body, headers={"content-type": "application/json"})
        if r.status_code != 200:
            return {"status": r.status_code, "detail": r.text}, 0
        n = 0
        with c.stream("GET", base + "/queue/data", params={"session_hash": session_hash}) as stream:
            for line in stream.iter_lines():
                n += len(line.encode()) + 1
                if line.startswith("data:"):
                    msg = json.loads(line[5:])
                    if msg.get("msg") in ("process_completed", "unexpected_error"):
                        return msg, n
    raise AssertionError("the event stream ended without a result")
