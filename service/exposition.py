"""The per-account metric families as exposition text, fast enough for 10,000 accounts on every scrape.

``generate_latest`` formats every sample on every scrape: about 2 s for the 90,000 series of 10,000 accounts on
our machines. ``AccountExposition`` renders an account's lines only when that account changed (a new sample, state
or poll) and otherwise joins the lines it kept, so a scrape costs a few milliseconds. It is rebuilt from the board
on each call, like ``service.metrics.AccountCollector``, whose families, series, values and help texts it
reproduces exactly (``tests/observability/test_exposition.py`` compares the two pages); an account that leaves
the watchlist leaves the page and the cache.

Serve it after the registry's page: ``generate_latest(registry) + exposition.render()``, with the registry no
longer holding an ``AccountCollector``. The daemon serves ``chunks()`` instead, one per family: at 100,000 accounts
the page is about 100 MB, and neither it nor its text is ever held in one piece.

The daemon renders the page in a worker thread while the event loop goes on polling and changing the board, so a
render only reads what one step of the interpreter copies whole: the list of views, a view's attributes, a tuple
of its trail. ``snapshot`` copies what other renderers iterate (the engine's dictionaries).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TypeVar

from prometheus_client.utils import floatToGoString

from service.board import AccountView, Board
from service.samples import AccountState, Sample

# name, help, in the order AccountCollector yields them; all are gauges.
FAMILIES = (
    ("flockwatch_followers", "Followers the platform showed at the last successful poll (a cached value)."),
    (
        "flockwatch_following",
        "Accounts followed, as the platform showed at the last successful poll (a cached value).",
    ),
    ("flockwatch_posts", "Posts, as the platform showed at the last successful poll (a cached value)."),
    ("flockwatch_last_sample_timestamp_seconds", "When the latest stored sample was observed."),
    ("flockwatch_last_poll_timestamp_seconds", "When the account was last polled, successfully or not."),
    (
        "flockwatch_followers_change",
        "Followers gained (negative: lost) over the window before the latest sample.",
    ),
    ("flockwatch_account_state", "1 for the account's current state."),
)
PER_STATE = ("flockwatch_accounts", "Watched accounts per platform and state.")
HEADERS = tuple(f"# HELP {name} {doc}\n# TYPE {name} gauge\n" for name, doc in (*FAMILIES, PER_STATE))

_Key = tuple[Sample | None, AccountState, datetime | None]
_ATTEMPTS = 5
T = TypeVar("T")


def snapshot(items: Callable[[], Iterable[T]]) -> list[T]:
    """What ``items()`` yields, as a list; taken again when the event loop changed a dictionary under it."""
    for _ in range(_ATTEMPTS - 1):
        try:
            return list(items())
        except (
            RuntimeError
        ):  # "dictionary changed size during iteration": the loop added or removed an account
            continue
    return list(items())


class AccountExposition:
    def __init__(self, board: Board) -> None:
        self._board = board
        # id(view) -> (view, what its lines were rendered from, lines per family); holding the view keeps its id
        self._cache: dict[int, tuple[AccountView, _Key, tuple[str, ...]]] = {}

    def render(self) -> bytes:
        return b"".join(self.chunks())

    def chunks(self) -> Iterator[bytes]:
        """The page as one encoded piece per family, each made as it is asked for."""
        views = self._board.views()
        # Entries move from the old cache to the new one, so after a poll cycle (every account changed) the
        # old lines are freed as the new ones are made, instead of both caches being held at once.
        old, self._cache = self._cache, {}
        cache = self._cache
        for view in views:
            cache[id(view)] = self._entry(view, old.pop(id(view), None))
        del old
        blocks = [lines for _, _, lines in cache.values()]
        for family, header in enumerate(HEADERS[:-1]):
            yield (header + "".join([lines[family] for lines in blocks])).encode()
        yield (HEADERS[-1] + _per_state(views)).encode()

    def _entry(
        self, view: AccountView, kept: tuple[AccountView, _Key, tuple[str, ...]] | None
    ) -> tuple[AccountView, _Key, tuple[str, ...]]:
        if kept is not None and kept[0] is view:
            key = kept[1]
            if key[0] is view.latest and key[1] is view.state and key[2] == view.last_polled_at:
                return kept
        return view, (view.latest, view.state, view.last_polled_at), _render(view)


def _render(view: AccountView) -> tuple[str, ...]:
    labels = f'account="{escape_label(view.ref.handle)}",platform="{escape_label(view.ref.platform)}"'
    latest = view.latest
    counts = [
        sample_line(name, labels, getattr(latest, field)) if latest else ""
        for name, field in (
            ("flockwatch_followers", "followers"),
            ("flockwatch_following", "following"),
            ("flockwatch_posts", "posts"),
        )
    ]
    last_sample = (
        sample_line("flockwatch_last_sample_timestamp_seconds", labels, latest.observed_at.timestamp())
        if latest
        else ""
    )
    polled = view.last_polled_at
    last_poll = (
        sample_line("flockwatch_last_poll_timestamp_seconds", labels, polled.timestamp()) if polled else ""
    )
    changes = "".join(
        sample_line("flockwatch_followers_change", f'{labels},window="{window}"', change)
        for window, change in _changes(view).items()
    )
    state = sample_line("flockwatch_account_state", f'{labels},state="{view.state.value}"', 1)
    return (*counts, last_sample, last_poll, changes, state)


def _changes(view: AccountView) -> dict[str, int | None]:
    return view.changes()


def sample_line(name: str, labels: str, value: float | None) -> str:
    """One sample line; labels in name order, as prometheus-client writes them."""
    if value is None:
        return ""
    return f"{name}{{{labels}}} {floatToGoString(value)}\n"  # type: ignore[no-untyped-call]


def _per_state(views: list[AccountView]) -> str:
    counts = Counter((view.ref.platform, view.state) for view in views)
    return "".join(
        sample_line(
            "flockwatch_accounts",
            f'platform="{platform}",state="{state.value}"',
            counts[(platform, state)],
        )
        for platform in sorted({view.ref.platform for view in views})
        for state in AccountState
    )


def escape_label(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value
