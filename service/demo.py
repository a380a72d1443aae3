"""The live demo: the daemon watching a simulated platform whose time runs ``speed`` times faster.

The simulated platform answers as Mastodon for its accounts and as GitHub's REST API (no token) for its
repositories; the daemon is pointed at it for both platforms.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.accounts import AccountRef
from service.clock import FastClock
from service.config import Config
from service.simulator.scenarios import demo_repositories, demo_scenarios
from service.simulator.server import SimulatedPlatform

DEMO_DOMAIN = "demo.example"
MISSING_ACCOUNT = f"ghost@{DEMO_DOMAIN}"  # an account the platform does not know: shows the not_found state


def demo_platform(speed: float) -> SimulatedPlatform:
    clock = FastClock(datetime.now(UTC), speed)
    return SimulatedPlatform([*demo_scenarios(DEMO_DOMAIN), *demo_repositories()], clock)


def demo_config(platform: SimulatedPlatform, db_url: str, listen: str, poll_every: timedelta) -> Config:
    handles = [*(s.handle for s in platform.scenarios.values()), MISSING_ACCOUNT]
    # the simulated platform answers as fast as asked: no budget to spread polls over
    simulated = {"base_url": platform.base_url, "rate_limit": {"requests": 1_000_000, "window": "1m"}}
    return Config.model_validate(
        {
            "database": {"url": db_url},
            "http": {"listen": listen},
            "poll": {"interval": poll_every, "jitter": poll_every / 4, "timeout": timedelta(seconds=5)},
            "platforms": {
                "mastodon": {**simulated, "allow_hosts": [f"127.0.0.1:{platform.port}"]},
                "github": simulated,
            },
            "watchlist": [str(_account(handle)) for handle in handles],
        }
    )


def _account(handle: str) -> AccountRef:
    """A scenario's account: a GitHub repository (``owner/name``) or a Mastodon account (``user@host``)."""
    return AccountRef("github" if "/" in handle else "mastodon", handle)
