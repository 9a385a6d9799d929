"""Online anomaly detection for one sensor's readings: O(1) time and memory per reading.

Each sensor has a `SensorState` of a few numbers. `Detector.observe(state, ts, value)` updates
it with one reading and returns a `Verdict`; `Detector.silence(state, now)` says whether the
sensor has gone quiet. The state is plain data (`to_dict` / `from_dict`), so a consumer can
checkpoint it and another can resume it exactly. Time is the readings' own timestamps (seconds),
never the clock of the process, so a backfill gets the verdicts live data would have got.

What it looks for, each against the sensor's own learned behaviour:

- **jump** (spikes, level shifts): the reading is far from a local linear prediction (Holt's
  level and trend) and from the previous reading, measured in a robust noise scale. A moderate
  jump is confirmed by the next reading: one that carries on in the same direction makes it the
  start of a manoeuvre. The scale has a floor, the busiest noise of the last hours, so a quiet
  phase (a drone on the ground) does not make the next take-off look like a jump.
- **stuck**: a run of identical values longer than the sensor's resolution and noise make
  likely (a coarse, quiet sensor repeats often, so it needs a longer run).
- **noise burst**: the short-term noise is several times the long-term noise.
- **drift**: the smoothed value leaves the range the sensor has kept in normal operation
  (remembered for hours) by more than a share of that range, and stays out; or it *creeps*:
  the sensor's calm changes (not manoeuvres) beyond what its own dynamics in its phase
  explain, summed over minutes, leave the range that sum kept. The phase (quiet: the drone
  idles; busy: it flies) is the sensor's short-term noise against its floor; its dynamics
  are a line of rate against value learned per phase, so a battery draining in flight and
  charging on the ground, or motors heating and cooling towards an equilibrium, are normal.
  Or it leaves the *level* the sensor keeps in its current phase, where it keeps one (a
  range a few noise floors wide: vibration in flight, altitude on the ground); that range is
  learned from whole windows of readings, a window late, so a phase change never widens it.
- **silence**: no reading for several of the sensor's usual intervals (`silence`).

A reading inside an ongoing anomaly episode is not a new alert: `Verdict.alert` is True only
when an episode starts, so a stuck sensor raises one alert, not one a second. A drift lasts
minutes: a spike, stuck run or burst inside one is told as itself, with an alert of its own.
`Verdict.score` is the strongest test statistic relative to its threshold: 1.0 is at the
threshold, and the severity follows it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

import orjson

from shared.models.alert import Severity

_LN2 = math.log(2.0)


class AnomalyKind(StrEnum):
    JUMP = "jump"
    STUCK = "stuck"
    NOISE = "noise"
    DRIFT = "drift"
    SILENCE = "silence"


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Thresholds, fixed on the benchmark's calibration seeds (`bench/anomaly.py calibrate` on
    seed 1; the level-in-a-phase test's on seeds 1 and 11-16 together, bench/README.md)."""

    warmup: int = 30  # readings before any verdict
    jump_threshold: float = 11.0  # |value - prediction| / noise scale
    # A jump below this many thresholds waits for the next reading: if that one carries on
    # in the same direction it was a manoeuvre (take-off, climb), not an anomaly.
    jump_confirm_below: float = 2.0
    level_alpha: float = 0.7  # Holt: level smoothing per reading
    trend_beta: float = 0.5  # Holt: trend smoothing per reading
    noise_half_life: float = 120.0  # readings: the scale's memory
    floor_half_life: float = 14400.0  # readings: how long the busiest recent noise is remembered
    floor_fraction: float = 0.7  # scale >= this part of that
    burst_ratio: float = 4.5  # short-term / long-term noise
    burst_half_life: float = 6.0  # readings
    stuck_probability: float = 1e-7  # a run of repeats at least this unlikely is stuck
    stuck_min_run: int = 8
    range_half_life: float = 21600.0  # readings: how long the usual range is remembered
    range_margin: float = 0.1  # share of the range's width a drift must go beyond it
    range_smoothing: float = 30.0  # readings: half-life of the value the range test uses
    range_min_seconds: float = 10.0  # out of range this long before it is a drift
    range_warmup: int = 1800  # readings that teach the range before the range test runs
    # Creep (slow drift inside the usual range): the sensor's calm changes beyond what its
    # own dynamics in its current phase explain, summed with this memory (seconds) ...
    creep_half_life: float = 300.0
    # Recent change per reading this many noise scales away from what the phase's dynamics
    # explain: a manoeuvre, not calm.
    creep_gate: float = 1.0
    velocity_half_life: float = 4.0  # readings: memory of that recent change
    busy_fraction: float = 0.5  # short-term noise above this part of the floor: busy phase
    phase_doubt: float = 0.2  # ... and within this of it: between the phases
    dynamics_half_life: float = 3600.0  # readings: memory of the phase's dynamics
    # ... and compared with the range that sum kept in normal operation, as the level is.
    creep_margin: float = 1.0  # share of that range's width a creep must go beyond it
    creep_follow_half_life: float = 1200.0  # readings: how slowly the range follows it outward
    creep_warmup: int = 3600  # readings before the creep test (its range from half of them)
    # Level in a phase: a sensor that keeps one level while the drone flies (vibration) or
    # idles (altitude on the ground) is out of order when it leaves that phase's range.
    phase_settle_seconds: float = 120.0  # a phase held this long has settled
    phase_window_seconds: float = 60.0  # the phase's range learns a window's extremes at once
    phase_warmup: int = 10  # windows that teach a phase's range before it is tested
    phase_max_width: float = 10.0  # a phase range wider than this many noise floors: no level
    phase_min_width: float = 2.0  # ... and it counts as at least this many floors wide
    phase_margin: float = 0.25  # share of that width a drift must go beyond the range
    phase_smoothing: float = 5.0  # readings: half-life of the value the phase test uses
    phase_hold_seconds: float = 30.0  # out of the phase's range this long before it is a drift
    silence_intervals: float = 5.0  # missing usual intervals before a sensor is silent
    silence_min_seconds: float = 5.0
    episode_quiet_seconds: float = 15.0  # normal this long: the episode is over


@dataclass(frozen=True, slots=True)
class Verdict:
    is_anomaly: bool  # the reading is inside an anomaly episode
    alert: bool  # ... and starts it: publish this one
    score: float  # strongest statistic / its threshold; >= 1.0 is anomalous
    kind: AnomalyKind | None = None
    severity: Severity | None = None
    message: str | None = None
    # Set when the anomaly is the *previous* reading (a moderate jump that the next reading
    # confirmed): its timestamp and value.
    previous: tuple[float, float] | None = None


NORMAL = Verdict(is_anomaly=False, alert=False, score=0.0)


# A test's result: score (1.0 at its threshold), kind, message, and the (timestamp, value) of
# the previous reading when that one is the anomaly.
_Stat = tuple[float, AnomalyKind, str, tuple[float, float] | None]


def severity_for_score(score: float) -> Severity:
    """Severity follows how far past its threshold the strongest test is."""
    if score >= 4.0:
        return Severity.CRITICAL
    if score >= 2.5:
        return Severity.HIGH
    if score >= 1.5:
        return Severity.MEDIUM
    return Severity.LOW


@dataclass(slots=True)
class SensorState:
    """Everything the detector knows about one sensor: plain numbers, checkpointable."""

    n: int = 0
    last_ts: float = 0.0
    last_value: float = 0.0
    interval: float = 0.0  # usual seconds between readings (EW)
    level: float = 0.0
    trend: float = 0.0  # per second
    scale: float = 0.0  # EW mean |residual|
    floor: float = 0.0  # the busiest recent scale, slowly forgotten
    burst: float = 0.0  # short EW mean |residual|
    quantum: float = 0.0  # smallest change between two readings seen (their resolution)
    run: int = 0  # identical readings in a row (0: last one differed)
    smooth: float = 0.0  # slow EW of the value (the range test's)
    low: float = 0.0  # the usual range: lowest and highest smoothed value, slowly forgotten
    high: float = 0.0
    out_since: float = 0.0  # > 0: when the smoothed value left the range
    # The sensor's dynamics per phase (quiet: the drone idles; busy: it flies), learned as a
    # regression of the calm rate of change on the smoothed value: EW means of the value, the
    # rate, value² and value x rate, and the weight learned so far.
    quiet_x: float = 0.0
    quiet_y: float = 0.0
    quiet_xx: float = 0.0
    quiet_xy: float = 0.0
    quiet_w: float = 0.0
    busy_x: float = 0.0
    busy_y: float = 0.0
    busy_xx: float = 0.0
    busy_xy: float = 0.0
    busy_w: float = 0.0
    creep_n: int = 0  # readings the creep has followed (a checkpoint of an older release: 0)
    velocity: float = 0.0  # EW change per reading (recent)
    creep: float = 0.0  # calm change beyond the dynamics, slowly forgotten
    creep_low: float = 0.0  # the usual range of `creep`, as `low` / `high` are the value's
    creep_high: float = 0.0
    creep_since: float = 0.0  # > 0: when the creep left its range
    # The sensor's level per phase: the phase (0 not known yet, 1 quiet, 2 busy), since when,
    # the quickly smoothed value, and each phase's range (its windows learned so far).
    phase: int = 0
    phase_since: float = 0.0
    quick: float = 0.0
    quiet_n: int = 0
    quiet_low: float = 0.0
    quiet_high: float = 0.0
    busy_n: int = 0
    busy_low: float = 0.0
    busy_high: float = 0.0
    phase_out_since: float = 0.0  # > 0: when the value left its phase's range
    # The window being watched and the one before it (learned once a phase change would have
    # been noticed): start (0: none), extremes, and whether an anomaly was inside.
    window_ts: float = 0.0
    window_low: float = 0.0
    window_high: float = 0.0
    window_anomalous: bool = False
    previous_ts: float = 0.0
    previous_low: float = 0.0
    previous_high: float = 0.0
    previous_anomalous: bool = False
    pending_score: float = 0.0  # a moderate jump waiting for the next reading (0: none)
    pending_residual: float = 0.0
    pending_value: float = 0.0
    pending_ts: float = 0.0
    episode: str = ""  # kind of the ongoing anomaly episode ("" none)
    episode_severity: str = ""
    episode_last: float = 0.0  # last anomalous reading of the episode
    silent_since: float = 0.0  # > 0: a silence alert was raised for the gap after this ts

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _STATE_FIELDS}

    def to_json(self) -> bytes:
        return orjson.dumps(self)  # orjson writes a dataclass's fields directly

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SensorState:
        """Unknown keys (a newer release's) are ignored; missing ones take their defaults."""
        return cls(**{key: value for key, value in raw.items() if key in _STATE_FIELDS})


_STATE_FIELDS = frozenset(field.name for field in fields(SensorState))


def _burst_sample(magnitude: float, state: SensorState, cfg: DetectorConfig) -> float:
    """A residual as the noise-burst test counts it: at most 10 scales, so a lone spike is
    a jump and not also a burst."""
    return min(magnitude, 10.0 * max(state.scale, cfg.floor_fraction * state.floor, 1e-12))


# The creep after a reading, whether the sensor is busy, the calm rate of change the reading
# showed (None: a manoeuvre, or no time passed), and the recent change per reading after it.
_Creep = tuple[float, bool, float | None, float]

# A phase's dynamics may pull the value back towards an equilibrium (a motor cooling, a battery
# charging) at most this fast (1/s), never push it away.
_STEEPEST_PULL = 1.0 / 60.0


def _dynamics(state: SensorState, busy: bool) -> tuple[float, float, float, float, float]:
    """A phase's EW means of value, rate, value², value x rate, and its weight."""
    if busy:
        return state.busy_x, state.busy_y, state.busy_xx, state.busy_xy, state.busy_w
    return state.quiet_x, state.quiet_y, state.quiet_xx, state.quiet_xy, state.quiet_w


def _expected_rate(state: SensorState, busy: bool, x: float) -> float:
    """The rate of change the sensor's phase usually shows at value `x`: rate = a + b * x,
    a least-squares line through that phase's calm readings (0 before it has any)."""
    mx, my, mxx, mxy, weight = _dynamics(state, busy)
    if weight <= 0:
        return 0.0
    variance = mxx - mx * mx
    slope = 0.0
    if variance > 1e-12:
        slope = max(-_STEEPEST_PULL, min(0.0, (mxy - mx * my) / variance))
    return my + slope * (x - mx)


def _learn_dynamics(state: SensorState, busy: bool, x: float, rate: float, least: float) -> None:
    """Teach the phase's line one calm reading, weighted at least `least` (its memory)."""
    mx, my, mxx, mxy, count = _dynamics(state, busy)
    count += 1.0
    weight = max(1.0 / count, least)
    mx += weight * (x - mx)
    my += weight * (rate - my)
    mxx += weight * (x * x - mxx)
    mxy += weight * (x * rate - mxy)
    if busy:
        state.busy_x, state.busy_y, state.busy_xx, state.busy_xy, state.busy_w = (
            mx,
            my,
            mxx,
            mxy,
            count,
        )
    else:
        state.quiet_x, state.quiet_y, state.quiet_xx, state.quiet_xy, state.quiet_w = (
            mx,
            my,
            mxx,
            mxy,
            count,
        )


def _phase_range(state: SensorState, phase: int) -> tuple[int, float, float]:
    """A phase's windows learned so far and its range (phase 1 quiet, 2 busy)."""
    if phase == 2:
        return state.busy_n, state.busy_low, state.busy_high
    if phase == 1:
        return state.quiet_n, state.quiet_low, state.quiet_high
    return 0, 0.0, 0.0


def _ew(previous: float, sample: float, half_life: float) -> float:
    weight = 1.0 - math.exp(-_LN2 / half_life)
    return previous + weight * (sample - previous)


class Detector:
    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = cfg = config or DetectorConfig()
        # Per-reading weights of the creep's averages, worked out once.
        self._velocity_weight = 1.0 - math.exp(-_LN2 / cfg.velocity_half_life)
        self._dynamics_weight = 1.0 - math.exp(-_LN2 / cfg.dynamics_half_life)
        self._follow_weight = 1.0 - math.exp(-_LN2 / cfg.creep_follow_half_life)
        self._range_keep = math.exp(-_LN2 / cfg.range_half_life)

    # --- one reading ----------------------------------------------------------------------

    def observe(self, state: SensorState, ts: float, value: float) -> Verdict:
        """Update `state` with a reading measured at `ts` (seconds) and judge it. A reading
        older than the newest one seen is judged against the current state but changes
        nothing (a late duplicate or a reordering)."""
        cfg = self.config
        if state.n == 0:
            state.n, state.last_ts, state.last_value, state.level = 1, ts, value, value
            state.smooth = state.low = state.high = value
            state.creep_n = 1
            return NORMAL
        if ts < state.last_ts:
            return self._late(state, ts, value)
        dt = ts - state.last_ts
        step = dt if dt > 0 else 1e-3
        prediction = state.level + state.trend * step
        residual = value - prediction
        scale = max(state.scale, cfg.floor_fraction * state.floor, 1e-12)
        same = value == state.last_value
        creep = self._creep(state, value, dt, scale)

        stats: list[_Stat] = []
        if state.n >= cfg.warmup:
            stats = self._tests(state, ts, value, residual, scale, same, prediction, creep)

        # A drift lasts minutes: a spike, stuck run or burst inside it is told as itself.
        strongest = max(
            stats,
            default=None,
            key=lambda item: (item[0] >= 1.0 and item[1] != AnomalyKind.DRIFT, item[0]),
        )
        anomalous = strongest is not None and strongest[0] >= 1.0
        self._learn(state, ts, value, dt, step, residual, same, anomalous, creep)
        if strongest is None:
            return NORMAL
        score = round(strongest[0], 3)
        if not anomalous:
            self._maybe_end_episode(state, ts)
            return Verdict(is_anomaly=False, alert=False, score=score)
        return self._episode(state, ts, score, strongest[1], strongest[2], strongest[3])

    def _tests(
        self,
        state: SensorState,
        ts: float,
        value: float,
        residual: float,
        scale: float,
        same: bool,
        prediction: float,
        creep: _Creep,
    ) -> list[_Stat]:
        cfg = self.config
        stats: list[_Stat] = []
        if state.pending_score > 0:
            move = value - state.pending_value
            carried_on = move * state.pending_residual > 0 and abs(move) >= 0.5 * abs(
                state.pending_residual
            )
            if not carried_on:
                stats.append(
                    (
                        state.pending_score,
                        AnomalyKind.JUMP,
                        f"{state.pending_value:g} jumped "
                        f"{state.pending_score * cfg.jump_threshold:.1f} noise scales "
                        f"and the next reading did not carry on",
                        (state.pending_ts, state.pending_value),
                    )
                )
            state.pending_score = 0.0
        # Far from the prediction *and* from the previous reading: a trend that stops (a climb
        # levelling off) leaves the value where it was, which is no jump.
        z = min(abs(residual), abs(value - state.last_value)) / scale
        jump = z / cfg.jump_threshold
        if 1.0 <= jump < cfg.jump_confirm_below:
            state.pending_score, state.pending_residual = jump, residual
            state.pending_value, state.pending_ts = value, ts
            jump = 0.0
        stats.append(
            (
                jump,
                AnomalyKind.JUMP,
                f"{value:g} is {z:.1f} noise scales from {prediction:.4g}",
                None,
            )
        )
        burst = _ew(state.burst, _burst_sample(abs(residual), state, cfg), cfg.burst_half_life)
        ratio = burst / max(state.scale, cfg.floor_fraction * state.floor, 1e-12)
        stats.append(
            (
                ratio / cfg.burst_ratio,
                AnomalyKind.NOISE,
                f"noise is {ratio:.1f} times its usual level",
                None,
            )
        )
        if same and state.floor > 0:
            run = state.run + 1
            # How likely a repeat is: the sensor's resolution against its current noise.
            likely = min(max(state.quantum / (2.0 * scale), 0.01), 0.95)
            needed = max(cfg.stuck_min_run, math.log(cfg.stuck_probability) / math.log(likely))
            stats.append(
                (
                    (run + 1) / needed,
                    AnomalyKind.STUCK,
                    f"{run + 1} identical readings in a row ({value:g})",
                    None,
                )
            )
        width = state.high - state.low
        smooth = _ew(state.smooth, value, cfg.range_smoothing)
        beyond = max(smooth - state.high, state.low - smooth, 0.0)
        if state.n >= cfg.range_warmup and width > 0 and beyond > 0 and state.out_since > 0:
            held = ts - state.out_since
            stats.append(
                (
                    min(beyond / (cfg.range_margin * width), held / cfg.range_min_seconds),
                    AnomalyKind.DRIFT,
                    f"{smooth:.4g} (smoothed) is outside its usual range "
                    f"{state.low:.4g} to {state.high:.4g} for {held:.0f} s",
                    None,
                )
            )
        level = self._phase_test(state, ts)
        if level is not None:
            stats.append(level)
        creep_width = state.creep_high - state.creep_low
        creep_beyond = max(creep[0] - state.creep_high, state.creep_low - creep[0], 0.0)
        if state.creep_n >= cfg.creep_warmup and creep_width > 0 and creep_beyond > 0:
            held = ts - state.creep_since if state.creep_since > 0 else 0.0
            creep_score = min(
                creep_beyond / (cfg.creep_margin * creep_width), held / cfg.range_min_seconds
            )
            message = ""  # written only when it may be shown (formatting costs per reading)
            if creep_score >= 1.0:
                message = (
                    f"crept {creep[0]:+.4g} beyond what its usual dynamics explain "
                    f"(usually {state.creep_low:+.4g} to {state.creep_high:+.4g}) "
                    f"for {held:.0f} s"
                )
            stats.append((creep_score, AnomalyKind.DRIFT, message, None))
        return stats

    # --- level in a phase ------------------------------------------------------------------

    def _phase_test(self, state: SensorState, ts: float) -> _Stat | None:
        """The quickly smoothed value against the range the sensor keeps in its current phase,
        where that range is a level (a few noise floors wide): vibration while the drone
        flies, altitude while it stands on the ground. A battery or a motor temperature has
        no level in a phase (it drains, charges, heats, cools): the test does not apply."""
        cfg = self.config
        if state.phase_out_since <= 0 or ts - state.phase_since < cfg.phase_settle_seconds:
            return None
        n, low, high = _phase_range(state, state.phase)
        if n < cfg.phase_warmup or high - low > cfg.phase_max_width * state.floor:
            return None
        value = state.quick
        # Heading past the middle towards the other phase's range: the phase is changing (a
        # landing the phase has not noticed yet), not drifting.
        other_n, other_low, other_high = _phase_range(state, 3 - state.phase)
        if other_n >= cfg.phase_warmup and (
            (value < low and other_high < low and value < (low + other_high) / 2)
            or (value > high and other_low > high and value > (high + other_low) / 2)
        ):
            return None
        width = max(high - low, cfg.phase_min_width * state.floor)
        beyond = max(value - high, low - value, 0.0)
        held = ts - state.phase_out_since
        score = min(beyond / (cfg.phase_margin * width), held / cfg.phase_hold_seconds)
        message = ""  # written only when it may be shown
        if score >= 1.0:
            phase = "busy" if state.phase == 2 else "quiet"
            message = (
                f"{value:.4g} (smoothed) is outside its usual range {low:.4g} to {high:.4g} "
                f"while {phase} for {held:.0f} s"
            )
        return score, AnomalyKind.DRIFT, message, None

    def _track_phase(self, state: SensorState, ts: float, anomalous: bool) -> None:
        """Follow the phase (with hysteresis, once the noise floor has seen both) and learn
        each phase's range from whole windows, a window late: a window is learned only when
        the phase held from before it began to after the next one, so the readings of a
        phase change (a landing) never widen the range of the phase it ends."""
        cfg = self.config
        value = state.last_value
        state.quick = value if state.n <= 2 else _ew(state.quick, value, cfg.phase_smoothing)
        if state.n < cfg.range_warmup // 2:
            return
        ratio = state.burst / max(state.floor, 1e-12)
        phase = state.phase
        if ratio > cfg.busy_fraction + cfg.phase_doubt:
            phase = 2
        elif ratio < cfg.busy_fraction - cfg.phase_doubt:
            phase = 1
        if phase != state.phase:
            state.phase, state.phase_since = phase, ts
            state.phase_out_since = state.window_ts = state.previous_ts = 0.0
            return
        quick = state.quick
        n, low, high = _phase_range(state, phase)
        if n > 0:
            slack = 0.5 * cfg.phase_margin * max(high - low, cfg.phase_min_width * state.floor)
            if quick > high + slack or quick < low - slack:
                if state.phase_out_since == 0:
                    state.phase_out_since = ts
            else:
                state.phase_out_since = 0.0
        if state.window_ts == 0:
            state.window_ts, state.window_low, state.window_high = ts, quick, quick
            state.window_anomalous = anomalous
            return
        state.window_low = min(state.window_low, quick)
        state.window_high = max(state.window_high, quick)
        state.window_anomalous = state.window_anomalous or anomalous
        if ts - state.window_ts < cfg.phase_window_seconds:
            return
        learn = (
            state.previous_ts > 0
            and state.previous_ts - state.phase_since >= cfg.phase_settle_seconds
            and not state.previous_anomalous
        )
        lows, highs = state.previous_low, state.previous_high
        state.previous_ts, state.previous_low = state.window_ts, state.window_low
        state.previous_high, state.previous_anomalous = state.window_high, state.window_anomalous
        state.window_ts, state.window_low, state.window_high = ts, quick, quick
        state.window_anomalous = anomalous
        if not learn:
            return
        if n == 0:
            low, high = lows, highs
        elif n < cfg.phase_warmup:
            low, high = min(low, lows), max(high, highs)
        else:  # follows a window outward, forgets towards it slowly (as the usual range)
            keep = self._range_keep**cfg.phase_window_seconds
            high = highs if highs > high else highs + (high - highs) * keep
            low = lows if lows < low else lows - (lows - low) * keep
        if phase == 2:
            state.busy_n, state.busy_low, state.busy_high = n + 1, low, high
        else:
            state.quiet_n, state.quiet_low, state.quiet_high = n + 1, low, high

    # --- slow drift -------------------------------------------------------------------------

    def _creep(self, state: SensorState, value: float, dt: float, scale: float) -> _Creep:
        """The creep after this reading, and what it learned from: the sensor's phase and the
        calm rate of change (None when the change was a manoeuvre or took no time)."""
        cfg = self.config
        busy = state.burst > cfg.busy_fraction * state.floor
        if dt <= 0:
            return state.creep, busy, None, state.velocity
        kept = state.creep * math.exp(-_LN2 * dt / cfg.creep_half_life)
        change = value - state.last_value
        velocity = state.velocity + self._velocity_weight * (change - state.velocity)
        # Near the line between the phases (the drone taking off or landing) which phase's
        # dynamics apply is unclear: not calm.
        if abs(state.burst / max(state.floor, 1e-12) - cfg.busy_fraction) < cfg.phase_doubt:
            return kept, busy, None, velocity
        expected = _expected_rate(state, busy, state.smooth)
        # A manoeuvre moves the value for a few readings in a row, against the noise, and
        # faster than the phase's dynamics explain. A drift creeps far more slowly than that.
        gate = cfg.creep_gate * scale
        if abs(velocity) > gate and abs(velocity - expected * state.interval) > gate:
            return kept, busy, None, velocity
        return kept + change - expected * dt, busy, change / dt, velocity

    def _learn(
        self,
        state: SensorState,
        ts: float,
        value: float,
        dt: float,
        step: float,
        residual: float,
        same: bool,
        anomalous: bool,
        creep: _Creep,
    ) -> None:
        cfg = self.config
        rate = creep[2]
        if rate is not None and not anomalous:
            _learn_dynamics(state, creep[1], state.smooth, rate, self._dynamics_weight)
        state.creep, state.velocity = creep[0], creep[3]
        state.creep_n += 1
        state.n += 1
        state.interval = dt if state.interval == 0 else _ew(state.interval, dt, 30.0)
        previous_level = state.level
        # A reading beyond the jump threshold moves the level as if it were at the threshold,
        # so one spike does not drag the prediction (and the next readings' verdicts) with it.
        limit = cfg.jump_threshold * max(state.scale, cfg.floor_fraction * state.floor, 1e-12)
        moved = residual if state.n < cfg.warmup else max(-limit, min(limit, residual))
        state.level = state.level + state.trend * step + cfg.level_alpha * moved
        if dt > 0:  # two readings with one timestamp say nothing about the trend
            new_trend = (state.level - previous_level) / step
            state.trend += cfg.trend_beta * (new_trend - state.trend)
        state.smooth = _ew(state.smooth, value, cfg.range_smoothing)
        magnitude = abs(residual)
        # The scale learns from every reading, each counted at most 3 scales (Huber), so a
        # spike barely moves it and a lasting change of noise is learned in minutes. Early on
        # it is a plain mean, so the first readings do not pin it.
        learning = min(magnitude, 3.0 * state.scale) if state.n > cfg.warmup else magnitude
        weight = max(1.0 / state.n, 1.0 - math.exp(-_LN2 / cfg.noise_half_life))
        state.scale += weight * (learning - state.scale)
        # The floor remembers the busiest noise the sensor has shown lately (in flight), so a
        # quiet phase (on the ground) does not make the next manoeuvre look like a jump.
        state.floor = max(state.scale, state.floor * math.exp(-_LN2 / cfg.floor_half_life))
        change = abs(value - state.last_value)
        if change > 0 and (state.quantum == 0 or change < state.quantum):
            state.quantum = change
        state.burst = _ew(state.burst, _burst_sample(magnitude, state, cfg), cfg.burst_half_life)
        state.run = state.run + 1 if same else 0
        state.last_ts, state.last_value = ts, value
        self._track_range(state, ts, anomalous)
        self._track_phase(state, ts, anomalous)

    def _track_range(self, state: SensorState, ts: float, anomalous: bool) -> None:
        """The usual range follows the smoothed value outward while all is normal and
        shrinks back towards it slowly, so it is what the sensor did over the last hours."""
        cfg = self.config
        outside = state.smooth > state.high or state.smooth < state.low
        if outside and state.out_since == 0:
            state.out_since = ts
        elif not outside:
            state.out_since = 0.0
        if state.creep_n < cfg.creep_warmup:
            if state.creep_n >= cfg.creep_warmup // 2:  # once the dynamics are learned
                state.creep_low = min(state.creep_low, state.creep)
                state.creep_high = max(state.creep_high, state.creep)
            else:
                state.creep_low = state.creep_high = state.creep
        else:
            self._track_creep_range(state, ts, anomalous)
        if state.n < cfg.range_warmup:
            state.low, state.high = min(state.low, state.smooth), max(state.high, state.smooth)
            return
        if anomalous:
            return
        keep = self._range_keep
        state.high = max(state.smooth, state.smooth + (state.high - state.smooth) * keep)
        state.low = min(state.smooth, state.smooth - (state.smooth - state.low) * keep)

    def _track_creep_range(self, state: SensorState, ts: float, anomalous: bool) -> None:
        """The creep's usual range follows it outward only slowly (following it reading by
        reading would take in a slow drift too), and not at all while it is anomalous;
        inside, the range shrinks towards it over hours."""
        creep = state.creep
        if creep > state.creep_high or creep < state.creep_low:
            if state.creep_since == 0:
                state.creep_since = ts
            if not anomalous:
                follow = self._follow_weight
                if creep > state.creep_high:
                    state.creep_high += follow * (creep - state.creep_high)
                else:
                    state.creep_low += follow * (creep - state.creep_low)
            return
        state.creep_since = 0.0
        keep = self._range_keep
        state.creep_high = creep + (state.creep_high - creep) * keep
        state.creep_low = creep - (creep - state.creep_low) * keep

    def _late(self, state: SensorState, ts: float, value: float) -> Verdict:
        """A reading older than the newest one seen (senders that reorder, a late upload):
        judged against the prediction for its time, but it teaches the state nothing. Only a
        jump too large to need the next reading's confirmation counts; the alert is its own,
        outside any episode."""
        cfg = self.config
        if state.n < cfg.warmup:
            return NORMAL
        scale = max(state.scale, cfg.floor_fraction * state.floor, 1e-12)
        prediction = state.level + state.trend * (ts - state.last_ts)
        z = min(abs(value - prediction), abs(value - state.last_value)) / scale
        score = round(z / cfg.jump_threshold, 3)
        if score < cfg.jump_confirm_below:
            return Verdict(is_anomaly=False, alert=False, score=min(score, 0.999))
        return Verdict(
            is_anomaly=True,
            alert=True,
            score=score,
            kind=AnomalyKind.JUMP,
            severity=severity_for_score(score),
            message=f"{value:g} (arrived late) is {z:.1f} noise scales from {prediction:.4g}",
        )

    # --- episodes -------------------------------------------------------------------------

    def _maybe_end_episode(self, state: SensorState, ts: float) -> None:
        if state.episode and ts - state.episode_last >= self.config.episode_quiet_seconds:
            state.episode = state.episode_severity = ""

    def _episode(
        self,
        state: SensorState,
        ts: float,
        score: float,
        kind: AnomalyKind,
        message: str,
        previous: tuple[float, float] | None,
    ) -> Verdict:
        severity = severity_for_score(score)
        self._maybe_end_episode(state, ts)
        # A slow drift lasts minutes: a spike, a stuck run or a burst inside it is a fault of
        # its own and is told as one.
        alert = not state.episode or (
            state.episode == AnomalyKind.DRIFT.value and kind != AnomalyKind.DRIFT
        )
        if alert:
            state.episode = kind.value
            state.episode_severity = severity.value
        state.episode_last = ts
        return Verdict(
            is_anomaly=True,
            alert=alert,
            score=score,
            kind=kind,
            severity=severity,
            message=message,
            previous=previous,
        )

    # --- silence ----------------------------------------------------------------------------

    def silence(self, state: SensorState, now: float) -> Verdict:
        """Whether the sensor has been quiet at event time `now` (the newest timestamp its
        partition has seen) for several of its usual intervals. Alerts once per gap."""
        cfg = self.config
        if state.n < cfg.warmup or state.interval <= 0:
            return NORMAL
        quiet = now - state.last_ts
        limit = max(cfg.silence_min_seconds, cfg.silence_intervals * state.interval)
        score = round(quiet / limit, 3)
        if score < 1.0:
            return NORMAL
        alert = state.silent_since != state.last_ts
        state.silent_since = state.last_ts
        return Verdict(
            is_anomaly=True,
            alert=alert,
            score=score,
            kind=AnomalyKind.SILENCE,
            severity=severity_for_score(score),
            message=f"no reading for {quiet:.0f} s (usually every {state.interval:.3g} s)",
        )
