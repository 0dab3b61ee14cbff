"""Weighted mixtures of streamed sources, and the corpus strings that name them.

``--config.data.corpus='books=0.7:stream:/data/books/*.gz,wiki=0.3:prepared:/data/wiki'``: each
source is its own stream (``data.streaming.ChunkCursor``); row ``i`` of a data shard's mixed
stream comes from the source that a counter-based draw picks, ``u = hash(seed, shard, i)`` against
the cumulative weights, so the choice of every row is fixed in advance (deterministic, and
resumable from the counter alone) and each source's share tends to its weight. A plain
``stream:…`` or ``prepared:…`` corpus is a mixture of one source, ``main``.

State (saved with checkpoints): ``{"counter": rows handed out, "taken": rows per source,
"sources": each source's cursor state}``.
"""

from __future__ import annotations

import re

import numpy as np

from data import streaming

_ITEM = re.compile(r"^([A-Za-z_][\w.-]*)=([^:,]*):(.*)$")
_LOOKS_LIKE_ITEM = re.compile(r"^[^/:]*=")  # "name=…" before any path: a (bad) item, not a glob
_U64 = (1 << 64) - 1
_MIX_TAG = 3


def is_streamed(corpus: str) -> bool:
    """Whether a corpus string names streamed sources (``stream:``, ``prepared:``, a mixture)."""
    return streaming.is_streamed_source(corpus) or bool(_ITEM.match(corpus.strip()))


def parse(corpus: str) -> list[tuple[str, float, str]]:
    """``[(name, weight, source spec)]``; weights normalised to sum 1.

    Raises:
      ValueError: one line naming what is wrong (malformed item, weight not positive, a name
        twice, a source that is neither ``stream:`` nor ``prepared:``) and the fix.
    """
    if streaming.is_streamed_source(corpus):
        return [("main", 1.0, corpus)]
    items: list[list] = []
    for part in corpus.split(","):
        part = part.strip()
        m = _ITEM.match(part)
        if m:
            name, weight, spec = m.groups()
            try:
                value = float(weight)
            except ValueError:
                value = float("nan")
            if not value > 0 or not np.isfinite(value):
                raise ValueError(f"mixture source {name!r} has weight {weight!r}; weights must be "
                                 "positive numbers, e.g. 'books=0.7:stream:…,wiki=0.3:prepared:…'")
            if any(name == i[0] for i in items):
                raise ValueError(f"mixture source name {name!r} appears twice in {corpus!r}; give "
                                 "each source its own name")
            if not streaming.is_streamed_source(spec):
                raise ValueError(f"mixture source {name!r} is {spec!r}; each source must be "
                                 "'stream:GLOB[,GLOB…]' or 'prepared:DIR'")
            items.append([name, value, spec])
        elif (items and part and items[-1][2].startswith(streaming.STREAM)
              and not _LOOKS_LIKE_ITEM.match(part)):
            items[-1][2] += "," + part  # another glob of the previous stream: source
        else:
            raise ValueError(f"corpus {corpus!r} is not a mixture: write "
                             "'NAME=WEIGHT:stream:GLOB,NAME=WEIGHT:prepared:DIR' (item "
                             f"{part!r} is malformed)")
    total = sum(i[1] for i in items)
    return [(n, w / total, s) for n, w, s in items]


def _uniform(seed: int, shard: int, rows: np.ndarray) -> np.ndarray:
    """float64 in [0, 1) per row index: splitmix64 of (seed, shard, row), counter-based."""
    with np.errstate(over="ignore"):
        key = np.uint64((int(seed) * 0x9E3779B97F4A7C15 + shard * 0xBF58476D1CE4E5B9
                         + _MIX_TAG) & _U64)
        z = rows.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + key
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class MixedCursor:
    """A data shard's rows drawn from its sources' cursors at the mixture's rates."""

    def __init__(self, cursors: dict[str, streaming.ChunkCursor], weights: dict[str, float],
                 *, seed: int, shard: int, state: dict | None = None):
        self._cursors, self._names = cursors, list(cursors)
        self._edges = np.cumsum([weights[n] for n in self._names])
        self._seed, self._shard = seed, shard
        state = state or {}
        self.counter = int(state.get("counter", 0))
        self.taken = {n: int(state.get("taken", {}).get(n, 0)) for n in self._names}

    def take(self, n: int) -> dict[str, np.ndarray]:
        """The next ``n`` rows of the mixed stream."""
        if len(self._names) == 1:
            rows = self._cursors[self._names[0]].take(n)
            which = np.zeros(n, np.int64)
        else:
            u = _uniform(self._seed, self._shard, np.arange(self.counter, self.counter + n))
            which = np.minimum(np.searchsorted(self._edges, u, side="right"),
                               len(self._names) - 1)
            parts = {i: self._cursors[name].take(int(np.sum(which == i)))
                     for i, name in enumerate(self._names) if np.any(which == i)}
            first = next(iter(parts.values()))
            rows = {k: np.empty((n, *v.shape[1:]), v.dtype) for k, v in first.items()}
            for i, part in parts.items():
                for k in rows:
                    rows[k][which == i] = part[k]
        for i, name in enumerate(self._names):
            self.taken[name] += int(np.sum(which == i))
        self.counter += n
        return rows

    def state(self) -> dict:
        return {"counter": self.counter, "taken": dict(self.taken),
                "sources": {n: c.state() for n, c in self._cursors.items()}}


def shares(states: dict) -> dict[str, float]:
    """``data/share/NAME``: each source's share of the rows handed out (a process's shards'
    mixture states summed)."""
    taken: dict[str, int] = {}
    for state in states.values():
        for name, count in state["taken"].items():
            taken[name] = taken.get(name, 0) + count
    total = sum(taken.values())
    return {f"data/share/{n}": c / total for n, c in taken.items()} if total else {}
