"""The load script in quick mode, so it cannot rot: concurrency, overload refusals, soak."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.load.__main__ import run  # noqa: E402


def test_concurrent_clients_overload_and_soak(zh_weights):
    # A queue of 4 and 40 simultaneous requests: most must be refused, each at once.
    report = run(str(zh_weights), clients=4, requests=3, overload_n=40, soak_n=30, threads=1, queue_size=4)
    c, o, s = report["concurrency"], report["overload"], report["soak"]
    assert c["requests"] == 12 and c["failed"] == 0, c["errors"]
    assert o["refused_busy"] > 0 and o["other_errors"] == []
    assert o["served"] + o["refused_busy"] == 40
    assert o["slowest_refusal_s"] < 10
    assert s["failed"] == 0
    assert report["app_alive"]
