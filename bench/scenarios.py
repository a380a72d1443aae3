"""Labelled scenario generator for the detection benchmark.

Every series is a follower count sampled daily or every 15 minutes, built from an organic model and, for
the bought families, an injected manipulation with its onset labelled. The organic model is meant to be
hard, not flattering:

- size N0 log-uniform over 10^2..10^8; follows and unfollows are separate Poisson streams
  (unfollows 0.001%..0.03% of followers per day), so the net gain of a small account can be negative;
- growth mode: 70% growing (net 0.01%..0.5% of followers per day, log-uniform), 15% declining, 15% stagnant;
- over-dispersion: a day-level log-normal multiplier (sigma 0.1..0.6) with AR(1) memory (rho 0..0.8), so some
  large accounts are as smooth day to day as T-Series (CV of daily gains down to a few per cent);
- weekly rhythm (amplitude 0..30%), diurnal rhythm for sub-daily samples (amplitude 0..60%);
- slow trend changes: the log-rate follows a piecewise-linear path, changing by up to x2 over 2..8 weeks;
- viral spikes (0.6 per account-month): K = 2..50 days of usual growth (log-uniform), a ramp of 1..12 hours
  and an exponential decay of 6 hours..4 days, all log-uniform;
- missing samples (2% dropped at random, and a 1..5 day outage in 30% of series) and sample-time jitter;
- 25% of daily YouTube-like series are rounded to three significant figures, as YouTube shows them;
- platform cohorts: 8 organic accounts on one platform, 60..100% of them losing 1..5% within a few hours
  at the same time (a platform purge).

Bought families add to an organic account (whose own growth goes on underneath):

- ``drip_constant``: exactly D per day, no organic gain showing (the founding case: "no 767, no 769");
  ``drip_constant_noisy``: D per day on top of organic growth of 1..10% of D. D is 10..100 times the
  account's usual gain and at least 100..2,000 (log-uniform) a day. After 10..40 days the drip stops and
  the count falls by 10..25% of D per day (net of organic growth) for 5..20 days (labelled ``fall``);
- ``drip_jitter10`` / ``drip_jitter30``: D x U(0.9, 1.1) or U(0.7, 1.3) per day, organic growth 3..33% of D;
- ``drip_jitter30_15min``: the same at 15-minute sampling, the day's amount delivered in 24 hourly runs;
- ``burst_15min``: 3..30 days of usual growth (and at least 60) delivered within 0..3 hours;
- ``purge``: 2..15% of followers removed within 6 hours;
- ``churn``: 3..6 follow/unfollow cycles of 20..60% of the following count, or one mass-follow of 30..100%.

The drip amount D is a multiple of the account's usual gain; drips smaller than the organic noise are out of
scope by construction (nothing can tell them from organic growth), and the families say how large they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

DAY = 86_400.0
HOUR = 3_600.0
EPOCH = 1_700_000_000.0  # 2023-11-14: series start near here, cohorts shifted so they never overlap
PLATFORMS = ("x", "mastodon", "bluesky", "youtube", "twitch")


@dataclass
class Event:
    family: str
    kinds: tuple[str, ...]  # detection kinds that count as catching it
    onset: float
    window: float  # target detection delay, seconds
    account: str  # platform:handle, or platform:* for a platform event


@dataclass
class Series:
    account: str
    family: str
    world: str  # series of one world share an engine (a platform cohort); others are alone
    times: np.ndarray
    followers: np.ndarray
    following: np.ndarray | None
    step: np.ndarray
    organic: bool
    events: list[Event] = field(default_factory=list)
    spikes: list[tuple[float, float]] = field(default_factory=list)  # organic viral spikes: (start, length)

    @property
    def months(self) -> float:
        return float(self.times[-1] - self.times[0]) / (30 * DAY)


@dataclass
class Organic:
    """The organic process of one account on a regular grid: follow and unfollow intensities per step."""

    start: float
    spacing: float
    size: float
    follows: np.ndarray  # expected follows per step
    unfollows: np.ndarray
    usual_daily_gain: float
    spikes: list[tuple[float, float]] = field(default_factory=list)  # viral spikes: (start, decay seconds)


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def organic_process(
    rng: np.random.Generator, days: int, spacing: float, start: float, size: float | None = None
) -> Organic:
    steps = int(days * DAY / spacing)
    t = start + spacing * np.arange(steps)
    day_index = ((t - start) // DAY).astype(int)
    n0 = size if size is not None else log_uniform(rng, 1e2, 1e8)
    unfollow_rate = log_uniform(rng, 1e-5, 3e-4)
    mode = rng.choice(["grow", "decline", "stagnant"], p=[0.7, 0.15, 0.15])
    growth = log_uniform(rng, 1e-4, 5e-3)
    net = {"grow": growth, "decline": -min(growth / 2, unfollow_rate * 0.9), "stagnant": 0.0}[mode]
    per_day = _day_multipliers(rng, days + 1)
    weekly = 1 + rng.uniform(0, 0.3) * np.sin(2 * np.pi * (day_index + rng.uniform(0, 7)) / 7)
    shape = per_day[day_index] * weekly * _trend(rng, days + 1)[day_index]
    if spacing < DAY:
        hours = (t % DAY) / HOUR
        shape = shape * (1 + rng.uniform(0, 0.6) * np.sin(2 * np.pi * (hours - rng.uniform(0, 24)) / 24))
    fraction = spacing / DAY
    follows = n0 * (net + unfollow_rate) * fraction * shape
    unfollows = np.full(steps, n0 * unfollow_rate * fraction)
    usual = n0 * max(net, 0.0) + 0.0
    spikes: list[tuple[float, float]] = []
    follows = follows + _viral(rng, t, max(n0 * (net + unfollow_rate), 0.05), spacing, spikes)
    return Organic(start, spacing, n0, follows, unfollows, usual, spikes)


def _day_multipliers(rng: np.random.Generator, days: int) -> np.ndarray:
    sigma = rng.uniform(0.1, 0.6)
    rho = rng.uniform(0.0, 0.8)
    shocks = rng.normal(0, sigma * math.sqrt(1 - rho * rho), days)
    out = np.empty(days)
    level = rng.normal(0, sigma)
    for i in range(days):
        level = rho * level + shocks[i]
        out[i] = level
    return np.exp(out - sigma * sigma / 2)


def _trend(rng: np.random.Generator, days: int) -> np.ndarray:
    """Piecewise-linear log-rate: slow trend changes of up to x2 over 2..8 weeks."""
    knots = [0]
    while knots[-1] < days:
        knots.append(knots[-1] + int(rng.uniform(14, 56)))
    values = np.cumsum(rng.uniform(-math.log(2), math.log(2), len(knots)) * 0.5)
    return np.exp(np.interp(np.arange(days), knots, values - values[0]))


def _viral(
    rng: np.random.Generator,
    t: np.ndarray,
    daily: float,
    spacing: float,
    spikes: list[tuple[float, float]],
) -> np.ndarray:
    extra = np.zeros(len(t))
    months = (t[-1] - t[0]) / (30 * DAY)
    for _ in range(rng.poisson(0.6 * months)):
        t0 = rng.uniform(t[0], t[-1])
        total = log_uniform(rng, 2, 50) * daily
        ramp = log_uniform(rng, 1, 12) * HOUR
        decay = log_uniform(rng, 6 * HOUR, 4 * DAY)
        shape = _ramp_decay(t - t0, ramp, decay, spacing)
        if shape.sum() > 0:
            extra += total * shape / shape.sum()
            spikes.append((float(t0), decay + ramp))
    return extra


def _ramp_decay(dt: np.ndarray, ramp: float, decay: float, spacing: float) -> np.ndarray:
    # Intensity integrated over each step, approximated at the step's middle.
    mid = dt + spacing / 2
    rising = np.clip(mid / ramp, 0, 1)
    falling = np.exp(-np.clip(mid - ramp, 0, None) / decay)
    return np.where(mid > 0, rising * falling, 0.0)


def realise(rng: np.random.Generator, org: Organic, injected: np.ndarray | None = None) -> np.ndarray:
    """Counts at each grid step: organic Poisson follows minus unfollows, plus injected gains."""
    gains = rng.poisson(np.maximum(org.follows, 0)) - rng.poisson(org.unfollows)
    if injected is not None:
        gains = gains + np.round(injected).astype(np.int64)
    counts = np.round(org.size) + np.cumsum(gains)
    return np.maximum(counts, 0).astype(np.int64)


def sample(
    rng: np.random.Generator,
    org: Organic,
    counts: np.ndarray,
    *,
    youtube_rounding: bool = False,
    following: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Drop missing samples, jitter times, round like YouTube if asked."""
    steps = len(counts)
    t = org.start + org.spacing * (np.arange(steps) + 1)
    keep = rng.random(steps) > 0.02
    if rng.random() < 0.3:
        outage_start = rng.integers(0, steps)
        keep[outage_start : outage_start + int(rng.uniform(1, 5) * DAY / org.spacing)] = False
    keep[:3] = True
    keep[-1] = True
    if org.spacing < DAY:  # daily exports are stamped at midnight; pollers drift by a few seconds
        t = t + rng.uniform(-0.05, 0.05, steps) * org.spacing
    values = counts.copy()
    step = np.ones(steps, dtype=np.int64)
    if youtube_rounding:
        digits = np.floor(np.log10(np.maximum(values, 1))).astype(np.int64) + 1
        step = np.power(10, np.maximum(digits - 3, 0)).astype(np.int64)
        values = (values // step) * step
    follow = following[keep] if following is not None else None
    return t[keep], values[keep], step[keep], follow


def _following(rng: np.random.Generator, steps: int, spacing: float) -> np.ndarray:
    base = log_uniform(rng, 100, 5000)
    drift = rng.normal(0, max(1.0, base * 0.002) * math.sqrt(spacing / DAY), steps).cumsum()
    return np.maximum(np.round(base + drift), 0).astype(np.int64)


def _handle(platform: str, name: str) -> str:
    return f"{platform}:{name}@bench.example" if platform == "mastodon" else f"{platform}:{name}"


class Generator:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self._n = 0

    def _name(self, family: str) -> str:
        self._n += 1
        return f"{family.replace('_', '-')}-{self._n}"

    def _series(
        self,
        family: str,
        org: Organic,
        counts: np.ndarray,
        platform: str,
        organic: bool,
        following: np.ndarray | None = None,
        world: str | None = None,
        events: list[Event] | None = None,
        name: str | None = None,
    ) -> Series:
        rounding = platform == "youtube" and org.spacing >= DAY and self.rng.random() < 0.25 and organic
        t, values, step, follow = sample(
            self.rng, org, counts, youtube_rounding=rounding, following=following
        )
        account = name or _handle(platform, self._name(family))
        for event in events or []:
            if event.account == "":
                event.account = account
        return Series(
            account,
            family,
            world or account,
            t,
            values,
            follow,
            step,
            organic,
            events or [],
            list(org.spikes),
        )

    # Organic families
    def organic(self, spacing: float, days: int) -> Series:
        family = "organic_daily" if spacing >= DAY else "organic_15min"
        org = organic_process(self.rng, days, spacing, EPOCH)
        platform = str(self.rng.choice(PLATFORMS))
        follow = (
            _following(self.rng, len(org.follows), spacing)
            if platform in ("x", "mastodon", "bluesky")
            else None
        )
        return self._series(family, org, realise(self.rng, org), platform, True, follow)

    def platform_cohort(
        self, index: int, spacing: float = DAY, days: int = 90, members: int = 8
    ) -> list[Series]:
        platform = str(self.rng.choice(("x", "mastodon", "bluesky")))
        start = EPOCH + (index + 1) * 400 * DAY
        purge_at = start + self.rng.uniform(40, 60) * DAY
        world = f"cohort-{index}"
        hit = set(
            self.rng.permutation(members)[: max(3, round(self.rng.uniform(0.6, 1.0) * members))].tolist()
        )
        out = []
        for member in range(members):
            org = organic_process(self.rng, days, spacing, start, size=log_uniform(self.rng, 1e3, 1e7))
            counts = realise(self.rng, org)
            if member in hit:
                share = self.rng.uniform(0.01, 0.05)
                at = purge_at + self.rng.uniform(0, 6 * HOUR)
                idx = int((at - start) // spacing)
                counts[idx:] -= np.round(counts[idx] * share).astype(np.int64)
            out.append(self._series("platform_purge", org, counts, platform, True, world=world))
        out[0].events.append(Event("platform_purge", ("platform_event",), purge_at, 2 * DAY, f"{platform}:*"))
        return out

    # Bought families
    def drip(self, jitter: float, spacing: float = DAY, days: int = 120, exact: bool = False) -> Series:
        family = {0.0: "drip_constant", 0.1: "drip_jitter10", 0.3: "drip_jitter30"}[jitter]
        family += "" if exact or jitter > 0 else "_noisy"
        if spacing < DAY:
            family += "_15min"
            days = 45
        org = organic_process(self.rng, days, spacing, EPOCH, size=log_uniform(self.rng, 1e2, 1e7))
        ratio = log_uniform(self.rng, 10, 100) if jitter == 0 else log_uniform(self.rng, 3, 30)
        usual = max(org.usual_daily_gain, 0.5)
        amount = max(round(ratio * usual), round(log_uniform(self.rng, 100, 2000)))
        # The organic part is scaled so that it is 1/ratio of the drip: the drip is what the buyer notices.
        scale = amount / ratio / usual if org.usual_daily_gain > 0 else 1.0
        # A dormant account of that size: all its organic activity scaled down, not just the follows.
        org.follows *= min(scale, 1.0)
        org.unfollows *= min(scale, 1.0)
        onset_day = int(self.rng.uniform(30, 60)) if spacing >= DAY else int(self.rng.uniform(20, 25))
        length = int(self.rng.uniform(10, 40)) if spacing >= DAY else int(self.rng.uniform(10, 15))
        fall_days = int(self.rng.uniform(5, 20))
        steps = len(org.follows)
        per_day = np.zeros(days + 60)  # room for a fall running past the end
        per_day[onset_day : onset_day + length] = amount * self.rng.uniform(1 - jitter, 1 + jitter, length)
        if exact:  # as in the founding case, the count moves by exactly D: no organic gain shows
            on = slice(int(onset_day * DAY / spacing), int((onset_day + length) * DAY / spacing))
            org.follows[on] = 0.0
            org.unfollows[on] = 0.0
        fall = onset_day + length
        # The count itself falls by 10..25% of D a day: the fallen-away followers outnumber organic growth.
        per_step = max(1, int(DAY / spacing))
        organic_net = (org.follows - org.unfollows)[: (days * per_step)].reshape(days, per_step).sum(axis=1)
        loss = amount * self.rng.uniform(0.1, 0.25) * self.rng.uniform(0.7, 1.3, fall_days)
        end = min(fall + fall_days, days)
        per_day[fall:end] = -(loss[: end - fall] + np.maximum(organic_net[fall:end], 0))
        injected = _spread(per_day, steps, spacing)
        start = EPOCH
        events = [
            Event(family, ("regular_growth",), start + onset_day * DAY, (3 if exact else 7) * DAY, ""),
            Event("fall", ("drop",), start + fall * DAY, 2 * DAY, ""),
        ]
        platform = str(self.rng.choice(PLATFORMS))
        return self._series(family, org, realise(self.rng, org, injected), platform, False, events=events)

    def burst(self, days: int = 21) -> Series:
        spacing = 15 * 60.0
        org = organic_process(self.rng, days, spacing, EPOCH, size=log_uniform(self.rng, 1e2, 1e7))
        size = max(log_uniform(self.rng, 3, 30) * org.usual_daily_gain, 60.0)
        onset = EPOCH + self.rng.uniform(10, 18) * DAY
        duration = self.rng.uniform(0, 3 * HOUR)
        t = EPOCH + spacing * np.arange(len(org.follows))
        injected = _delivery(t, spacing, onset, duration, size)
        events = [Event("burst_15min", ("burst",), onset, 6 * HOUR, "")]
        platform = str(self.rng.choice(PLATFORMS))
        return self._series(
            "burst_15min", org, realise(self.rng, org, injected), platform, False, events=events
        )

    def purge(self, days: int = 90) -> Series:
        org = organic_process(self.rng, days, DAY, EPOCH, size=log_uniform(self.rng, 1e3, 1e7))
        counts = realise(self.rng, org)
        onset_day = int(self.rng.uniform(30, 70))
        share = self.rng.uniform(0.02, 0.15)
        counts[onset_day:] -= np.round(counts[onset_day] * share).astype(np.int64)
        events = [Event("purge", ("drop",), EPOCH + onset_day * DAY, 2 * DAY, "")]
        platform = str(self.rng.choice(PLATFORMS))
        return self._series("purge", org, counts, platform, False, events=events)

    def churn(self, days: int = 90) -> Series:
        org = organic_process(self.rng, days, DAY, EPOCH, size=log_uniform(self.rng, 1e2, 1e6))
        following = _following(self.rng, len(org.follows), DAY)
        onset_day = int(self.rng.uniform(30, 60))
        base = int(following[onset_day])
        if self.rng.random() < 0.5:
            following[onset_day:] += int(base * self.rng.uniform(0.3, 1.0))
        else:
            day = onset_day
            for _ in range(int(self.rng.integers(3, 7))):
                swing = int(base * self.rng.uniform(0.2, 0.6))
                hold = int(self.rng.integers(1, 4))
                following[day : day + hold] += swing
                day += hold + int(self.rng.integers(1, 3))
        events = [Event("churn", ("churn",), EPOCH + onset_day * DAY, 5 * DAY, "")]
        platform = str(self.rng.choice(("x", "mastodon", "bluesky")))
        return self._series(
            "churn", org, realise(self.rng, org), platform, False, following=following, events=events
        )

    # Seller delivery shapes (shared/reference/detection.md, "How sellers deliver")
    def staircase(self) -> Series:
        """Waves of bought followers hours apart (drip-feed runs of a large order, or repeated orders)."""
        spacing = float(self.rng.choice([15 * 60.0, HOUR]))
        days = 21
        org = organic_process(self.rng, days, spacing, EPOCH, size=log_uniform(self.rng, 1e2, 1e6))
        usual = max(org.usual_daily_gain, 1.0)
        onset = EPOCH + self.rng.uniform(8, 14) * DAY
        gap = log_uniform(self.rng, HOUR, DAY)
        t = EPOCH + spacing * np.arange(len(org.follows))
        injected = np.zeros(len(t))
        for wave in range(int(self.rng.integers(2, 9))):
            size = max(log_uniform(self.rng, 0.5, 30) * usual, 5.0)
            injected += _delivery(t, spacing, onset + wave * gap, self.rng.uniform(0, 30 * 60), size)
        events = [Event("staircase", ("burst",), onset, 6 * HOUR, "")]
        return self._bought("staircase", org, injected, events)

    def drip_feed(self) -> Series:
        """One order repeated N times at a fixed interval ("runs x quantity every X minutes")."""
        spacing = 15 * 60.0
        org = organic_process(self.rng, 21, spacing, EPOCH, size=log_uniform(self.rng, 1e2, 1e6))
        usual = max(org.usual_daily_gain, 1.0)
        onset = EPOCH + self.rng.uniform(8, 14) * DAY
        runs = int(self.rng.integers(5, 51))
        every = self.rng.uniform(10, 120) * 60.0
        quantity = max(log_uniform(self.rng, 0.05, 2) * usual, 3.0)
        t = EPOCH + spacing * np.arange(len(org.follows))
        injected = np.zeros(len(t))
        for run in range(runs):
            injected += _delivery(t, spacing, onset + run * every, 60.0, quantity)
        events = [Event("drip_feed", ("burst", "regular_growth"), onset, DAY, "")]
        return self._bought("drip_feed", org, injected, events)

    def seller_drip(self, spacing: float) -> Series:
        """An order at a seller's speed (50-5,000/day) on top of organic growth: started 0-24 h after it
        was placed (any time of day), over-delivered by 0-30%, for 3-20 days."""
        family = "seller_drip_daily" if spacing >= DAY else "seller_drip_15min"
        days = 60 if spacing >= DAY else 40
        org = organic_process(self.rng, days, spacing, EPOCH, size=log_uniform(self.rng, 1e2, 1e7))
        speed = log_uniform(self.rng, 50, 5000)
        onset = EPOCH + self.rng.uniform(15, days - 15) * DAY  # any time of day
        length = self.rng.uniform(3, 12) * DAY * (1 + self.rng.uniform(0, 0.3))
        t = EPOCH + spacing * np.arange(len(org.follows))
        injected = _steady(t, spacing, onset, length, speed)
        events = [Event(family, ("regular_growth",), onset, 3 * DAY, "")]
        return self._bought(family, org, injected, events)

    def refill_sawtooth(self) -> Series:
        """A bought batch that falls away and is refilled a day after the last drop at the order's speed."""
        spacing = float(self.rng.choice([DAY, 15 * 60.0]))
        days = 90 if spacing >= DAY else 45
        org = organic_process(self.rng, days, spacing, EPOCH, size=log_uniform(self.rng, 1e2, 1e6))
        usual = max(org.usual_daily_gain, 1.0)
        order = max(log_uniform(self.rng, 5, 100) * usual, 50.0)
        speed = order / self.rng.uniform(1, 3)  # per day
        t = EPOCH + spacing * np.arange(len(org.follows))
        at = EPOCH + self.rng.uniform(20, 25) * DAY
        injected = _steady(t, spacing, at, order / speed * DAY, speed)
        events = [Event("refill", ("burst", "regular_growth"), at, 3 * DAY, "")]
        at += order / speed * DAY
        for _ in range(int(self.rng.integers(1, 4))):
            at += self.rng.uniform(2, 10) * DAY
            lost = order * self.rng.uniform(0.1, 0.9)
            falling = self.rng.uniform(1, 3) * DAY
            injected -= _steady(t, spacing, at, falling, lost / falling * DAY)
            events.append(Event("sawtooth_drop", ("drop",), at, 2 * DAY, ""))
            at += falling + DAY  # refilled a day after the last drop, at the order's speed
            injected += _steady(t, spacing, at, lost / speed * DAY, speed)
            events.append(Event("refill", ("burst", "regular_growth"), at, 3 * DAY, ""))
            at += lost / speed * DAY
        return self._bought(
            "refill_sawtooth", org, injected, [e for e in events if e.onset < t[-1] - 3 * DAY]
        )

    def heavy_fall(self) -> Series:
        """A bought batch, then 0-75% of it gone within a month, at any pace."""
        org = organic_process(self.rng, 90, DAY, EPOCH, size=log_uniform(self.rng, 1e2, 1e6))
        usual = max(org.usual_daily_gain, 1.0)
        bought = max(log_uniform(self.rng, 10, 200) * usual, 100.0)
        t = EPOCH + DAY * np.arange(len(org.follows))
        at = EPOCH + self.rng.uniform(30, 40) * DAY
        length = self.rng.uniform(1, 10) * DAY
        injected = _steady(t, DAY, at, length, bought / length * DAY)
        fall_at = at + length + self.rng.uniform(0, 10) * DAY
        share = self.rng.uniform(0, 0.75)
        falling = self.rng.uniform(1, 30) * DAY
        injected -= _steady(t, DAY, fall_at, falling, share * bought / falling * DAY)
        events = [Event("heavy_fall", ("drop",), fall_at, 3 * DAY, "")] if share >= 0.05 else []
        return self._bought("heavy_fall", org, injected, events)

    # Small and newborn accounts, watched from creation
    def newborn(self, bought: bool) -> Series:
        spacing = float(self.rng.choice([15 * 60.0, HOUR]))
        days = 30
        size = float(self.rng.integers(0, 1001))
        rate = log_uniform(self.rng, 0.1, 20)  # organic followers a day, from the first hours
        org = organic_process(self.rng, days, spacing, EPOCH, size=max(size, 1.0))
        scale = rate / max(float(org.follows.sum()) / days, 1e-9)
        org.follows *= scale
        org.unfollows *= min(scale, 1.0) * 0.1
        org.size = size
        if not bought:
            return self._series("newborn_organic", org, realise(self.rng, org), self._platform(), True)
        onset = EPOCH + self.rng.uniform(2 * HOUR, 3 * DAY)
        t = EPOCH + spacing * np.arange(len(org.follows))
        injected = _delivery(t, spacing, onset, self.rng.uniform(0, HOUR), log_uniform(self.rng, 5, 200))
        events = [Event("newborn_burst", ("burst",), onset, 6 * HOUR, "")]
        return self._bought("newborn_burst", org, injected, events)

    def github_campaign(self) -> Series:
        """A fake-star campaign: 1-3 waves of 5-50 stars within seconds to an hour, about 34 h apart, on a
        repository with 0-100 stars, usually watched from its first hours."""
        spacing = float(self.rng.choice([15 * 60.0, HOUR]))
        days = 30
        org = organic_process(self.rng, days, spacing, EPOCH, size=1.0)
        rate = log_uniform(self.rng, 0.05, 5)
        org.follows *= rate / max(float(org.follows.sum()) / days, 1e-9)
        org.unfollows *= 0.0
        org.size = float(self.rng.integers(0, 101)) if self.rng.random() < 0.3 else 0.0
        t = EPOCH + spacing * np.arange(len(org.follows))
        onset = EPOCH + self.rng.uniform(1 * HOUR, 2 * DAY)
        injected = np.zeros(len(t))
        events = []
        for _ in range(int(self.rng.integers(1, 4))):
            stars = float(np.clip(round(23 * math.exp(self.rng.normal(0, 0.6))), 5, 50))
            seconds = float(np.clip(12 * math.exp(self.rng.normal(0, 4.4)), 1, HOUR))
            injected += _delivery(t, spacing, onset, seconds, stars)
            events.append(Event("github_campaign", ("burst",), onset, 6 * HOUR, ""))
            onset += float(np.clip(34 * math.exp(self.rng.normal(0, 0.4)), 12, 80)) * HOUR
        name = f"github:bench-owner-{self._n}/campaign-{self._n}"
        self._n += 1
        return self._series(
            "github_campaign",
            org,
            realise(self.rng, org, injected),
            "github",
            False,
            events=events,
            name=name,
        )

    # Organic confounders: crowds that look bought for an hour, then leave a tail
    def crowd_with_tail(self, spacing: float) -> Series:
        """A giveaway, TV appearance or shout-out: 10-300 days of usual growth in a spike with a tail."""
        family = "crowd_daily" if spacing >= DAY else "crowd_15min"
        days = 60 if spacing >= DAY else 30
        org = organic_process(self.rng, days, spacing, EPOCH, size=log_uniform(self.rng, 1e3, 1e7))
        daily = max(org.usual_daily_gain, 1.0)
        t = EPOCH + spacing * np.arange(len(org.follows))
        t0 = EPOCH + self.rng.uniform(15, days - 10) * DAY
        total = log_uniform(self.rng, 10, 300) * daily
        decay = log_uniform(self.rng, 0.5 * DAY, 5 * DAY)
        shape = _ramp_decay(t - t0, log_uniform(self.rng, 0.5, 6) * HOUR, decay, spacing)
        org.follows = org.follows + total * shape / shape.sum()
        org.spikes.append((float(t0), decay))
        return self._series(family, org, realise(self.rng, org), self._platform(), True)

    def starter_pack(self) -> Series:
        """A Bluesky starter pack: follows arriving over hours to days, falling off slowly."""
        spacing = 15 * 60.0
        org = organic_process(self.rng, 30, spacing, EPOCH, size=log_uniform(self.rng, 1e2, 1e5))
        t = EPOCH + spacing * np.arange(len(org.follows))
        t0 = EPOCH + self.rng.uniform(10, 20) * DAY
        total = log_uniform(self.rng, 50, 5000)
        age = np.clip(t - t0, 0, None)
        shape = np.where(t >= t0, 1.0 / (1.0 + age / log_uniform(self.rng, HOUR, DAY)) ** 1.5, 0.0)
        org.follows = org.follows + total * shape / shape.sum()
        return self._series("starter_pack", org, realise(self.rng, org), "bluesky", True)

    def _platform(self) -> str:
        return str(self.rng.choice(PLATFORMS))

    def _bought(self, family: str, org: Organic, injected: np.ndarray, events: list[Event]) -> Series:
        return self._series(
            family, org, realise(self.rng, org, injected), self._platform(), False, events=events
        )


def _steady(t: np.ndarray, spacing: float, start: float, length: float, per_day: float) -> np.ndarray:
    """``per_day`` delivered evenly from ``start`` for ``length`` seconds, on the sample grid."""
    overlap = np.clip(np.minimum(t + spacing, start + length) - np.maximum(t, start), 0, None)
    return per_day * overlap / DAY


def _spread(per_day: np.ndarray, steps: int, spacing: float) -> np.ndarray:
    """A daily amount on the sample grid: at once for daily grids, in 24 hourly runs for finer ones."""
    if spacing >= DAY:
        return per_day[:steps]
    per_step = int(DAY // spacing)
    hourly_steps = max(1, int(HOUR // spacing))
    out = np.zeros(steps)
    day_of_step = np.arange(steps) // per_step
    on_hour = (np.arange(steps) % hourly_steps) == 0
    out[on_hour] = per_day[day_of_step[on_hour]] / 24
    return out


def _delivery(t: np.ndarray, spacing: float, onset: float, duration: float, size: float) -> np.ndarray:
    start = onset
    end = onset + max(duration, 1.0)
    overlap = np.clip(np.minimum(t + spacing, end) - np.maximum(t, start), 0, None)
    return size * overlap / overlap.sum()


@dataclass
class Sizes:
    organic_daily: int = 400
    organic_15min: int = 60
    cohorts: int = 20
    drips: int = 150
    drips_15min: int = 60
    bursts: int = 150
    purges: int = 100
    churns: int = 100
    # Seller delivery shapes, small and newborn accounts, GitHub campaigns, organic confounders
    staircases: int = 60
    drip_feeds: int = 60
    seller_drips: int = 60  # at each of daily and 15-minute sampling
    refills: int = 60
    heavy_falls: int = 60
    newborns: int = 60  # organic, and as many with a bought burst
    campaigns: int = 100
    crowds: int = 60  # at each of daily and 15-minute sampling
    starter_packs: int = 40

    @staticmethod
    def quick() -> Sizes:
        return Sizes(60, 10, 3, 20, 8, 20, 15, 15, 10, 10, 10, 10, 10, 10, 15, 10, 8)


def generate(seed: int = 20261126, sizes: Sizes | None = None) -> list[Series]:
    sizes = sizes or Sizes()
    gen = Generator(seed)
    out: list[Series] = []
    out += [gen.organic(DAY, 120) for _ in range(sizes.organic_daily)]
    out += [gen.organic(15 * 60.0, 30) for _ in range(sizes.organic_15min)]
    for i in range(sizes.cohorts):
        out += gen.platform_cohort(i)
    out += [gen.drip(0.0, exact=True) for _ in range(sizes.drips)]
    for jitter in (0.0, 0.1, 0.3):
        out += [gen.drip(jitter) for _ in range(sizes.drips)]
    out += [gen.drip(0.3, spacing=15 * 60.0) for _ in range(sizes.drips_15min)]
    out += [gen.burst() for _ in range(sizes.bursts)]
    out += [gen.purge() for _ in range(sizes.purges)]
    out += [gen.churn() for _ in range(sizes.churns)]
    out += [gen.staircase() for _ in range(sizes.staircases)]
    out += [gen.drip_feed() for _ in range(sizes.drip_feeds)]
    for spacing in (DAY, 15 * 60.0):
        out += [gen.seller_drip(spacing) for _ in range(sizes.seller_drips)]
    out += [gen.refill_sawtooth() for _ in range(sizes.refills)]
    out += [gen.heavy_fall() for _ in range(sizes.heavy_falls)]
    for bought in (False, True):
        out += [gen.newborn(bought) for _ in range(sizes.newborns)]
    out += [gen.github_campaign() for _ in range(sizes.campaigns)]
    for spacing in (DAY, 15 * 60.0):
        out += [gen.crowd_with_tail(spacing) for _ in range(sizes.crowds)]
    out += [gen.starter_pack() for _ in range(sizes.starter_packs)]
    return out
