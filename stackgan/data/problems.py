"""The bad-input policy shared by every dataset source: raise at once, or skip and count."""

from __future__ import annotations

from collections import Counter

ON_ERROR_CHOICES = ("raise", "skip")


class InputErrors:
    """Collects bad-input reports for one dataset split.

    Args:
        on_error: ``"raise"`` (default) raises ValueError at the first bad input, naming the file
            and line; ``"skip"`` drops the input, counts it, and `print_summary` says so. Nothing
            is ever dropped silently.
    """

    def __init__(self, on_error: str = "raise"):
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
        self.on_error = on_error
        self.counts: Counter[str] = Counter()
        self.first: dict[str, str] = {}

    def report(self, kind: str, where: str, message: str) -> None:
        """Report one bad input: ``kind`` names the category, ``where`` is ``"file:line"``."""
        text = f"{where}: {message}"
        if self.on_error == "raise":
            raise ValueError(f"{text} (pass on_error='skip' to skip bad inputs and count them)")
        self.counts[kind] += 1
        self.first.setdefault(kind, text)

    @property
    def total(self) -> int:
        """Number of skipped inputs so far."""
        return sum(self.counts.values())

    def summary(self, what: str) -> str | None:
        """One line per category of skipped input, or None when nothing was skipped."""
        if not self.counts:
            return None
        lines = [f"{what}: skipped {self.total} bad input(s):"]
        for kind, count in sorted(self.counts.items()):
            lines.append(f"  {count} x {kind} (first: {self.first[kind]})")
        return "\n".join(lines)

    def print_summary(self, what: str) -> None:
        """Print `summary` when anything was skipped."""
        text = self.summary(what)
        if text:
            print(text, flush=True)
