"""The load script in quick mode: issue 14's findings, reproduced at small scale, must stay fixed.

Every request answered, the server alive, the counts adding up; and the public Space's bounds: no
/run/ request accepted, no response over 2 MB, RSS growth over the soak's new sessions within
150 MB, no upload kept, nothing left in the temp folder after the app stops. (The full run,
1,000 sessions, is `python -m tests.load`; its figures are in the README.)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.load.__main__ import Options, run  # noqa: E402


def test_quick_load(zh_weights):
    # A queue of 4 and 40 simultaneous requests: most must be refused, each at once.
    report = run(Options.quick_mode(weights=str(zh_weights)))
    c, o, s, b, w, u = (report[k] for k in ("concurrency", "overload", "soak", "run", "worst", "upload"))
    assert c["requests"] == 12 and c["failed"] == 0, c["errors"]
    assert o["refused_busy"] > 0 and o["other_errors"] == []
    assert o["served"] + o["refused_busy"] == 40
    assert o["slowest_refusal_s"] < 10

    # Soak: every request a new session, long ones included, every kind served.
    assert s["sent"] == 30 and s["long"] == 3
    assert sum(row["sent"] for row in s["rows"].values()) == 30
    assert {k.split()[0] for k in s["rows"]} == {"translate", "trace", "ui"}
    assert s["short_not_ok"] == 0 and s["total"]["timeout"] == 0, s["errors"]
    assert s["rss_after_mb"] > 0 and s["temp_after"]["bytes"] >= 0

    # /run/: accepted or refused, but answered; and the page stays reachable meanwhile.
    assert b["run_route_accepted"] + b["run_route_refused"] + b["run_route_failed"] == 8
    assert "timeout" not in b["statuses"]
    assert b["config_idle_ms"] is not None and b["config_failed_during"] == 0

    for kind in ("trace", "ui"):
        assert w[kind]["outcome"] != "timeout" and w[kind]["response_bytes"] > 0
    assert u["status"] is not None

    assert report["app_alive"] and report["problems"] == []
    summary = report["summary"]
    assert summary["run_route_accepted"] == 0 and summary["run_route_refused"] == 8
    assert b["statuses"] != {} and all(not k.startswith("2") for k in b["statuses"]), b["statuses"]
    assert summary["max_response_bytes"] <= 2_000_000
    assert 0 < w["trace"]["target_tokens"] <= 40  # the output cap holds on the worst input
    assert summary["rss_growth_mb"] <= 150
    assert summary["upload_accepted_bytes"] == 0 and u["status"] >= 400
    assert summary["temp_dir_left_after_exit_bytes"] == 0
