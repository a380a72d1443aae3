"""Per-platform health of the sources, on a registry the caller owns (never the global one)."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge


class SourceMetrics:
    """Requests, failures by kind, the rate-limit budget, health, and whether the poll cycle was stretched."""

    def __init__(self, registry: CollectorRegistry) -> None:
        # The request limit per window each platform's headers last reported (for the cycle planner).
        self.reported_limits: dict[str, int] = {}
        self._requests = Counter(
            "flockwatch_source_requests", "HTTP requests sent to a platform", ["platform"], registry=registry
        )
        self._failures = Counter(
            "flockwatch_source_request_failures",
            "Requests to a platform that failed, by kind (timeout, http_5xx, rate_limited, auth, ...)",
            ["platform", "kind"],
            registry=registry,
        )
        self._remaining = Gauge(
            "flockwatch_ratelimit_remaining",
            "Requests left in the platform's current rate-limit window, as it last reported",
            ["platform"],
            registry=registry,
        )
        self._reset = Gauge(
            "flockwatch_ratelimit_reset_timestamp_seconds",
            "When the platform's rate-limit window refills (Unix time)",
            ["platform"],
            registry=registry,
        )
        self._up = Gauge(
            "flockwatch_source_up",
            "1 if the last request to the platform succeeded, 0 if it failed as a whole",
            ["platform"],
            registry=registry,
        )
        self._stretched = Gauge(
            "flockwatch_poll_cycle_stretched",
            "1 if the watchlist is too large for the interval within the rate limit and polls were spread out",
            ["platform"],
            registry=registry,
        )

    def request(self, platform: str) -> None:
        self._requests.labels(platform).inc()

    def failure(self, platform: str, kind: str) -> None:
        self._failures.labels(platform, kind).inc()
        self._up.labels(platform).set(0)

    def success(self, platform: str) -> None:
        self._up.labels(platform).set(1)

    def budget(
        self, platform: str, remaining: int | None, reset_at: datetime | None, limit: int | None = None
    ) -> None:
        if limit is not None and limit > 0:
            self.reported_limits[platform] = limit
        if remaining is not None:
            self._remaining.labels(platform).set(remaining)
        if reset_at is not None:
            self._reset.labels(platform).set(reset_at.timestamp())

    def stretched(self, platform: str, stretched: bool) -> None:
        self._stretched.labels(platform).set(1 if stretched else 0)
