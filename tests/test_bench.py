"""Smoke test of the benchmarks: the smallest run of each, in-process; output shape only."""

from __future__ import annotations

import json
import os
import re

import pytest

from bench.__main__ import BENCHMARKS, main

RATIO = re.compile(r"^RATIO (\S+) (\S+) (\S+)$")


def _backends() -> list[str]:
    # PostgreSQL runs on a fresh database of the local server, never on the shared test one.
    return ["sqlite", "postgresql"] if os.environ.get("TEST_DATABASE_URL") else ["sqlite"]


@pytest.mark.parametrize("backend", _backends())
def test_every_benchmark_prints_figures_and_ratio_lines(backend, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BENCH_DATABASE_URL", raising=False)
    out_json = tmp_path / "figures.json"
    status = main(["--smoke", "--loans", "300", "--backend", backend, "--json", str(out_json)])
    out = capsys.readouterr().out
    assert status == 0, out
    ratios = {m.group(1): m for line in out.splitlines() if (m := RATIO.match(line))}
    names = {name.split(".")[0] for name in ratios}
    expected = {"seedfast", "plan_reminders", "lookups", "pages", "dashboards", "dispatch", "bot"}
    if backend == "postgresql":
        expected.add("workers")
    assert expected <= names, sorted(names)
    assert len(BENCHMARKS) == 7
    for name, match in ratios.items():
        float(match.group(2))  # every value is a number
        assert match.group(3) == "-" or re.fullmatch(r"(<=|>=)[0-9.e+-]+", match.group(3)), name
        assert name.endswith(f".{backend}")
    doc = json.loads(out_json.read_text())
    assert {f["name"] for f in doc["figures"]} == set(ratios)
    assert all(f["met"] in (True, False, None) for f in doc["figures"])
    # Each figure is printed as a line before its RATIO line.
    assert "[plan_reminders/" in out and "peak_rss_mb" in out
