"""Import problems: one per bad line or field, collected and raised together.

Importers validate a whole file before anything is written. Every problem found is recorded as an
:class:`ImportProblem`; if there is at least one, the importer raises a single :class:`ImportFailed`
carrying all of them, so a bad file is rejected as a whole (all-or-nothing per file).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from os import PathLike

#: How many problems ``str(ImportFailed)`` lists before summarising the rest.
MAX_SHOWN = 20
#: How many problems are kept in memory; past this only the total is counted.
MAX_KEPT = 1000


def _clip(text: str, limit: int = 200) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ImportProblem(Exception):
    """One problem in an input file: where it is (file, 1-based line, field) and what is wrong.

    ``str()`` renders ``data.jsonl:17: field 'timestamp': invalid datetime ...``; the line and the
    field are left out when unknown (``data.csv: file is empty``).
    """

    def __init__(
        self,
        file: str | PathLike[str],
        line: int | None,
        message: str,
        field: str | None = None,
        column: int | None = None,
    ) -> None:
        self.file = str(file)
        self.line = line
        self.field = field
        self.column = column
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.field:
            return f"{where}: field '{self.field}': {self.message}"
        return f"{where}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"ImportProblem(file={self.file!r}, line={self.line!r}, "
            f"field={self.field!r}, message={self.message!r})"
        )

    def __reduce__(self):
        return (type(self), (self.file, self.line, self.message, self.field, self.column))


class ImportFailed(Exception):
    """A file was rejected: nothing from it may be written. Carries every problem found."""

    def __init__(
        self,
        problems: Iterable[ImportProblem],
        total: int | None = None,
        file: str | PathLike[str] | None = None,
        max_shown: int = MAX_SHOWN,
    ) -> None:
        self.problems: list[ImportProblem] = list(problems)
        self.total = max(total or 0, len(self.problems))
        self.file = (
            str(file) if file is not None else (self.problems[0].file if self.problems else None)
        )
        self.max_shown = max_shown
        super().__init__(str(self))

    def __str__(self) -> str:
        n = self.total
        head = f"{self.file or 'input'}: {n} problem{'s' if n != 1 else ''}, nothing was imported"
        shown = self.problems[: self.max_shown]
        lines = [head] + [f"  {p}" for p in shown]
        if n > len(shown):
            lines.append(f"  ... and {n - len(shown)} more")
        return "\n".join(lines)

    def __reduce__(self):
        return (type(self), (self.problems, self.total, self.file, self.max_shown))


def _line_of(problem: ImportProblem) -> int:
    return problem.line or 0


class ProblemCollector:
    """Collects problems for one file while it is read, and raises them all at the end."""

    def __init__(self, file: str | PathLike[str], max_kept: int = MAX_KEPT) -> None:
        self.file = str(file)
        self.max_kept = max_kept
        self.problems: list[ImportProblem] = []
        self.total = 0

    def add(
        self,
        line: int | None,
        message: str,
        field: str | None = None,
        column: int | None = None,
    ) -> None:
        """Record one problem (kept up to ``max_kept``; all are counted)."""
        self.total += 1
        if len(self.problems) < self.max_kept:
            self.problems.append(ImportProblem(self.file, line, _clip(message, 300), field, column))

    def add_earlier(
        self,
        line: int,
        message: str,
        field: str | None = None,
        column: int | None = None,
        after: int = 0,
    ) -> None:
        """Record a problem of a line read before some problems already recorded (a check made
        after its line was read), where :meth:`add` would have put it then: after the problems
        of earlier lines and the first ``after`` problems of ``line``, before the others. The
        kept problems stay the first ``max_kept`` in line order (problems are recorded in line
        order but for these)."""
        self.total += 1
        start = bisect.bisect_left(self.problems, line, key=_line_of)
        at = min(start + after, bisect.bisect_right(self.problems, line, lo=start, key=_line_of))
        if at < self.max_kept:
            problem = ImportProblem(self.file, line, _clip(message, 300), field, column)
            self.problems.insert(at, problem)
            del self.problems[self.max_kept :]

    def __bool__(self) -> bool:
        return self.total > 0

    def __len__(self) -> int:
        return self.total

    def raise_if_any(self) -> None:
        """Raise :class:`ImportFailed` when anything was recorded."""
        if self.total:
            raise ImportFailed(self.problems, total=self.total, file=self.file)


class UnknownFormat(ValueError):
    """The input could not be matched to any known import format."""
