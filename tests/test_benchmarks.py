"""The benchmarks in quick mode, so they cannot rot (figures are printed, never asserted)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmarks_quick_mode_runs_every_section(zh_weights):
    proc = subprocess.run([sys.executable, "-m", "tests.benchmarks", "--quick", "--weights", str(zh_weights)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for section in ("machine:", "1. translate latency", "2. explorer trace", "3. training throughput",
                    "4. app cold start", "5. batch translation CLI"):
        assert section in out, section
    assert "FAILED" not in out and "did not start" not in out
