"""The detection benchmark's own parts on a small fleet: the labelled events it writes, and the
scores it gives (the figures in bench/README.md come from `bench/anomaly.py report`)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import anomaly


def test_the_fleet_is_seeded_and_labelled() -> None:
    one = anomaly.fleet(5, drones=2, hours=0.5, warmup_hours=0.5)
    again = anomaly.fleet(5, drones=2, hours=0.5, warmup_hours=0.5)
    assert [(e.sensor, e.kind, e.start) for e in one.events] == [
        (e.sensor, e.kind, e.start) for e in again.events
    ]
    assert len(one.series) == 8 and one.hours == 1.0
    assert {e.kind for e in one.events} <= set(anomaly.KINDS) and one.events
    assert all(e.start >= one.scored_from for e in one.events)  # nothing in the warm-up
    silent = [e for e in one.events if e.kind == "silence"]
    for event in silent:  # a silent sensor really sent nothing in its window
        [series] = [s for s in one.series if s.key == f"drone-{event.drone}/{event.sensor}"]
        assert not ((series.ts >= event.start) & (series.ts <= event.end)).any()


def test_scores_put_the_baselines_and_the_detector_side_by_side() -> None:
    data = anomaly.fleet(5, drones=2, hours=0.5, warmup_hours=0.5)
    never = anomaly.evaluate(anomaly.Never(), data)
    ours = anomaly.evaluate(anomaly.Ours(), data)
    assert never.overall == 0.0 and never.fa_rate == 0.0 and never.delays == []
    assert ours.overall > 0.5 and ours.fa_rate < 5.0
    assert all(delay >= 0 for delay in ours.delays)
    table = anomaly.table([never, ours], anomaly.KINDS)
    assert "never-alert" in table and "dronecast online detector" in table
