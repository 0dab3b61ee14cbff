"""Input that is skipped (or changed) on purpose: counted by reason, and reported once.

Readers that drop a bad part of their input (a line that is not UTF-8, a document too short for a
task, a row with an empty text) add it here with its location (``"path:line"``), and whoever owns
the whole read calls :meth:`Skipped.warn` once at the end: one warning per reason, with the count,
the first few locations and what to do to keep those parts.

Example::

  skipped = Skipped()
  skipped.add(BAD_LINE, "a.txt:4")
  skipped.warn("corpus 'a.txt'")
  # WARNING corpus 'a.txt': 1 line that is not valid UTF-8 was skipped (a.txt:4); re-encode …
"""

from __future__ import annotations

import collections
import dataclasses

from absl import logging

SHOWN = 3  # locations listed per reason


@dataclasses.dataclass(frozen=True)
class Reason:
    """Why parts of the input were skipped or changed.

    Attributes:
      one: the phrase after a count of 1, e.g. ``"line that is not valid UTF-8 was skipped"``.
      many: the phrase after a larger count.
      fix: what the user can do to keep those parts.
    """

    one: str
    many: str
    fix: str


class Skipped:
    """Counts of skipped parts per :class:`Reason`, with their first :data:`SHOWN` locations."""

    def __init__(self):
        self._counts: collections.Counter[Reason] = collections.Counter()
        self._where: dict[Reason, list[str]] = collections.defaultdict(list)

    def add(self, reason: Reason, where: str) -> None:
        """Counts one part skipped for ``reason`` at ``where`` (e.g. ``"a.txt:4"``)."""
        self._counts[reason] += 1
        if len(self._where[reason]) < SHOWN:
            self._where[reason].append(where)

    def count(self, reason: Reason | None = None) -> int:
        """How many parts were skipped for ``reason`` (None: for any reason)."""
        return sum(self._counts.values()) if reason is None else self._counts[reason]

    def lines(self) -> list[str]:
        """One sentence per reason: ``"3 lines that … were skipped (a.txt:4, …, and 1 more)"``."""
        out = []
        for reason, n in self._counts.items():
            where = self._where[reason]
            more = f", and {n - len(where)} more" if n > len(where) else ""
            out.append(f"{n} {reason.one if n == 1 else reason.many} ({', '.join(where)}{more})")
        return out

    def summary(self) -> str:
        """All reasons in one clause (``"; "``-joined), or ``"nothing was skipped"``."""
        return "; ".join(self.lines()) or "nothing was skipped"

    def warn(self, scope: str) -> None:
        """Logs one warning per reason: ``"{scope}: {count} … ({locations}); {fix}"``."""
        for reason, line in zip(self._counts, self.lines(), strict=True):
            logging.warning("%s: %s; %s", scope, line, reason.fix)

    def merge(self, other: Skipped) -> None:
        """Adds ``other``'s counts and locations to this one."""
        for reason, n in other._counts.items():
            self._counts[reason] += n
            room = SHOWN - len(self._where[reason])
            self._where[reason].extend(other._where[reason][:max(room, 0)])
