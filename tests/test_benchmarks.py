"""The benchmarks in quick mode, so they cannot rot (figures are printed, never asserted)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_benchmarks_quick_mode_runs_every_section(zh_weights):
    proc = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks", "--quick", "--weights", str(zh_weights)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for section in (
        "machine:",
        "1. translate latency",
        "2. explorer trace",
        "3. training throughput",
        "4. app cold start",
        "5. batch translation CLI",
        "7. contributions and faithfulness",
    ):
        assert section in out, section
    assert "FAILED" not in out and "did not start" not in out


def test_browser_benchmark_quick_mode_times_every_action(zh_weights):
    """Two repetitions of each action on the tiny model: it still finds every control and sees every plot change."""
    from benchmarks.browser import CHROMIUM, actions

    if not Path(CHROMIUM).exists() or importlib.util.find_spec("playwright") is None:
        reason = "needs Python playwright and /usr/bin/chromium (apt-get install chromium fonts-noto-cjk)"
        if os.environ.get("CI"):
            raise RuntimeError(f"CI must run the browser benchmark: {reason}")
        pytest.skip(reason)
    command = [
        sys.executable,
        "-m",
        "tests.benchmarks",
        "--browser",
        "--quick",
        "--weights",
        str(zh_weights),
        "--threads",
        "1",
    ]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for action in actions():
        assert action.name in proc.stdout, action.name
