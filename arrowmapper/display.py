"""The live progress display of the command line (rich), redrawn from the progress board.

On a terminal: an overall bar with rows, rows/s and ETA, and one line per worker (its chunk,
attempt, rows, RSS); with a file source also the bytes read, in all and per worker. Elsewhere
(a cron job, a CI log): a plain line every few seconds.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from .run.progress import ProgressSnapshot, human_bytes


def console(stderr: bool = False) -> Any:
    """A rich Console for the command line's output: folded to the terminal's width on a
    terminal, never wrapped elsewhere (a pipe, a file, a CI log: rich would fold every line
    at 80 columns, splitting what a script greps for)."""
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal:
        out.soft_wrap = True
    return out


_make_console = console


def _rss_mb(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except (psutil.Error, ValueError):
        return None


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def render(snapshot: ProgressSnapshot, width: int = 40) -> Any:
    """A rich renderable of one snapshot: the overall bar and one line per running worker."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    s = snapshot
    # bytes are shown once any are counted (a file source); a database job reads none
    show_bytes = bool(s.bytes_read) or any(r.bytes_read for r in s.running)
    head = Table.grid(padding=(0, 1))
    cells: list[Any] = [
        ProgressBar(total=100.0, completed=s.progress_percentage, width=width),
        Text(f"{s.progress_percentage:5.1f}%", style="bold"),
        Text(
            f"{s.completed_chunks}/{s.total_chunks} chunks"
            + (f", {s.failed_chunks} failed" if s.failed_chunks else "")
        ),
        Text(
            f"{s.rows_written:,} rows"
            + (f" of ~{s.rows_expected:,}" if s.rows_expected > s.rows_written else "")
        ),
        Text(f"{s.rows_per_second:,.0f} rows/s"),
    ]
    if show_bytes:
        cells.append(Text(f"{human_bytes(s.bytes_read)} read"))
    cells.append(Text(f"ETA {_eta(s.eta_seconds)}"))
    head.add_row(*cells)
    workers = Table.grid(padding=(0, 2))
    for r in s.running:
        rss = _rss_mb(r.pid) if r.pid else None
        row = [
            Text(f"  worker {r.pid or '-'}", style="cyan"),
            Text(f"chunk {r.chunk_id}" + (f" (attempt {r.attempt})" if r.attempt > 1 else "")),
            Text(f"{r.rows_written:,} rows"),
        ]
        if show_bytes:
            row.append(Text(f"{human_bytes(r.bytes_read)} read"))
        row += [
            Text(f"RSS {rss:,.0f} MB" if rss is not None else "RSS -"),
            Text(f"{r.seconds:.1f}s"),
        ]
        workers.add_row(*row)
    return Group(head, workers)


def plain_line(s: ProgressSnapshot) -> str:
    return (
        f"progress {s.progress_percentage:5.1f}% chunks {s.completed_chunks}/{s.total_chunks} "
        f"failed {s.failed_chunks} running {s.running_chunks} rows {s.rows_written} "
        f"rows/s {s.rows_per_second:.0f} "
        + (f"expected {s.rows_expected} " if s.rows_expected else "")
        + (f"bytes {s.bytes_read} " if s.bytes_read else "")
        + f"eta {_eta(s.eta_seconds)}"
    )


class ProgressDisplay:
    """A progress callback that draws a live display on a terminal, or logs plain lines.

    >>> with ProgressDisplay() as show:                     # doctest: +SKIP
    ...     am.map_query(..., progress=show)
    """

    def __init__(
        self, console: Any = None, interval: float = 5.0, header: str | None = None
    ) -> None:
        self.console = console or _make_console(stderr=True)
        self.header = header  # printed once, with the first snapshot (the job has started)
        self.interval = interval
        self._live: Any = None
        self._last_plain = -1.0

    def __enter__(self) -> ProgressDisplay:
        if self.console.is_terminal:
            from rich.live import Live
            from rich.text import Text

            self._live = Live(
                Text("planning..."), console=self.console, refresh_per_second=4, transient=False
            )
            self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)
            self._live = None

    def __call__(self, snapshot: ProgressSnapshot) -> None:
        if self.header:
            self.console.print(self.header, markup=False, highlight=False, soft_wrap=True)
            self.header = None
        if self._live is not None:
            self._live.update(render(snapshot))
            return
        now = time.monotonic()
        if snapshot.done or self._last_plain < 0 or now - self._last_plain >= self.interval:
            self._last_plain = now
            self.console.print(plain_line(snapshot), markup=False, highlight=False, soft_wrap=True)
