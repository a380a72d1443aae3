"""The per-account metric families as exposition text, fast enough for 10,000 accounts on every scrape.

``generate_latest`` formats every sample on every scrape: about 2 s for the 90,000 series of 10,000 accounts on
our machines. ``AccountExposition`` renders an account's lines only when that account changed (a new sample, state
or poll) and otherwise reuses the lines it kept, deflated in blocks of accounts (``DeflatedLines``: about 0.2 kB
an account instead of 1.3 kB as text). It is rebuilt from the board
on each call, like ``service.metrics.AccountCollector``, whose families, series, values and help texts it
reproduces exactly (``tests/observability/test_exposition.py`` compares the two pages); an account that leaves
the watchlist leaves the page and its block.

Serve it after the registry's page: ``generate_latest(registry) + exposition.render()``, with the registry no
longer holding an ``AccountCollector``. The daemon serves ``chunks()`` instead, a deflated block of accounts of
one family each: at 100,000 accounts the page is over 100 MB of text, never held in one piece.

The daemon renders the page in a worker thread while the event loop goes on polling and changing the board, so a
render only reads what one step of the interpreter copies whole: the list of views, a view's attributes, a tuple
of its trail. ``snapshot`` copies what other renderers iterate (the engine's dictionaries).
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Generic, TypeVar

from prometheus_client.utils import floatToGoString

from service.board import AccountView, Board
from service.deflate import Deflated, Piece, deflated, plain
from service.samples import AccountState

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

BLOCK_ITEMS = 1_000  # accounts per deflated block: a block's family is 50-200 kB of text
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


class DeflatedLines(Generic[T]):
    """Lines of many items in several families, kept deflated in blocks of ``BLOCK_ITEMS`` items.

    Formatting every line on every scrape is slow (seconds at 100,000 accounts), and keeping every account's
    lines as text costs over a kilobyte an account. So a block of items keeps its lines per family deflated
    (about a tenth of the text), with what they were rendered from. A scrape hands the blocks whose items did not
    change to the page as they are (spliced into the gzipped page, ``service.deflate``); in a block where some
    did, only those are formatted again. ``update`` then ``family`` for each family in turn.
    """

    def __init__(self, families: int, lines: Callable[[T], Sequence[str]]) -> None:
        self._families, self._lines = families, lines
        self._blocks: list[_Block] = []

    def update(self, items: Sequence[T], marks: Sequence[Sequence[object]]) -> None:
        """Take the items as they are now, with what their lines are made from: ``marks`` are columns, the
        i-th entry of each belongs to the i-th item, and equal entries mean the same lines. Columns instead of
        a key per item: a scrape then builds no object per account for the garbage collector to walk."""
        old, self._blocks = self._blocks, []
        for index, start in enumerate(range(0, len(items), BLOCK_ITEMS)):
            end = start + BLOCK_ITEMS
            keys = (tuple(items[start:end]), *(tuple(column[start:end]) for column in marks))
            kept = old[index] if index < len(old) else None
            if kept is None or kept.keys != keys:
                kept = self._remade(keys, kept)
            self._blocks.append(kept)

    def family(self, index: int) -> Iterator[Deflated]:
        """One family's lines, a block at a time, as kept."""
        for block in self._blocks:
            yield block.families[index]

    def _remade(self, keys: tuple[tuple[Any, ...], ...], kept: _Block | None) -> _Block:
        """The block with the lines of the items whose marks changed formatted again, the others' kept."""
        # Rows compared as tuples: identical entries are equal without calling __eq__ on them.
        rows = zip(zip(*kept.keys, strict=True), zip(*keys, strict=True), strict=False) if kept else ()
        same = [old == now for old, now in rows]  # the block's items beyond its old length are new
        # After a poll cycle no item is the same: the old block is not inflated for nothing.
        before = kept.lines() if kept is not None and any(same) else []
        lines = [
            before[at] if at < len(same) and same[at] else self._encoded(item)
            for at, item in enumerate(keys[0])
        ]
        return _Block.made(keys, lines, self._families)

    def _encoded(self, item: T) -> tuple[bytes, ...]:
        return tuple(text.encode() for text in self._lines(item))


@dataclass(slots=True, frozen=True)
class _Block:
    keys: tuple[tuple[Any, ...], ...]  # the items, then each column of what their lines were rendered from
    families: tuple[Deflated, ...]  # each family's lines of these items
    sizes: array[int]  # bytes of each item's lines in each family: sizes[item * families + family]

    @classmethod
    def made(cls, keys: tuple[tuple[Any, ...], ...], lines: list[tuple[bytes, ...]], families: int) -> _Block:
        sizes = array("I", [len(text) for item in lines for text in item])
        texts = tuple(deflated(b"".join([item[family] for item in lines])) for family in range(families))
        return cls(keys, texts, sizes)

    def lines(self) -> list[tuple[bytes, ...]]:
        """Each item's lines in each family, as kept."""
        count = len(self.families)
        columns = [
            _split(packed.text(), self.sizes[family::count]) for family, packed in enumerate(self.families)
        ]
        return list(zip(*columns, strict=True))


def _split(text: bytes, sizes: Iterable[int]) -> list[bytes]:
    pieces, start = [], 0
    for end in accumulate(sizes):
        pieces.append(text[start:end])
        start = end
    return pieces


class AccountExposition:
    def __init__(self, board: Board) -> None:
        self._board = board
        self._lines: DeflatedLines[AccountView] = DeflatedLines(len(FAMILIES), _render)

    def render(self) -> bytes:
        return b"".join([plain(piece) for piece in self.chunks()])

    def chunks(self) -> Iterator[Piece]:
        """The page as encoded pieces, family after family, each made as it is asked for."""
        views = self._board.views()
        # An account removed and added again is a new view, with lines of its own.
        marks = (
            [view.latest for view in views],
            [view.state for view in views],
            [view.last_polled_at for view in views],
        )
        self._lines.update(views, marks)
        for family, header in enumerate(HEADERS[:-1]):
            yield header.encode()
            yield from self._lines.family(family)
        yield (HEADERS[-1] + _per_state(views)).encode()


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
