"""Anomaly detection by z-score against a sensor's own recent history. No state of its own:
the history is read from MongoDB, so any api replica gives the same verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass

from shared.models.alert import Severity
from shared.models.telemetry import severity_for_z


@dataclass(frozen=True, slots=True)
class Verdict:
    is_anomaly: bool
    score: float  # z rounded to 3 decimals; 0.0 without enough history
    severity: Severity | None = None
    message: str | None = None


NO_VERDICT = Verdict(is_anomaly=False, score=0.0)


def judge(
    value: float,
    history: list[float],
    min_samples: int,
    threshold: float,
    sensor_type: str,
    unit: str | None,
) -> Verdict:
    """`value` against `history` (the sensor's previous readings): an anomaly when at least
    `min_samples` exist, they vary, and |value - mean| / std >= `threshold`."""
    if len(history) < min_samples:
        return NO_VERDICT
    try:
        mean = math.fsum(history) / len(history)
        std = math.sqrt(
            math.fsum((sample - mean) * (sample - mean) for sample in history) / len(history)
        )
        z = abs(value - mean) / std if std > 0 else math.nan
    except OverflowError:  # readings near the float limits: no meaningful statistics
        return NO_VERDICT
    if not math.isfinite(z):
        return NO_VERDICT
    score = round(z, 3)
    if z < threshold:
        return Verdict(is_anomaly=False, score=score)
    measured = f"{value:g} {unit}" if unit else f"{value:g}"
    message = (
        f"{sensor_type} {measured} is {z:.1f}\u03c3 from the mean of the last "
        f"{len(history)} readings ({mean:.4g})"
    )
    return Verdict(is_anomaly=True, score=score, severity=severity_for_z(z), message=message)
