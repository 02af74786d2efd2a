"""Keep Rust's panic reports off the terminal while the CLI runs: connectorx's panic hook
writes them on file descriptor 2 (the CLI reports the error once, in one line)."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from typing import TextIO


class RustPanicFilter:
    """Drop the report Rust's panic hook writes on file descriptor 2 (``thread '...' panicked
    at ...``, the panic's debug struct, the backtrace note) while the command runs; the error
    itself is reported once, in the server's words, by the one-line message.

    File descriptor 2 -- what Rust code and the worker processes write to -- becomes a pipe that
    a thread copies to the real stderr, less those lines; Python's ``sys.stderr`` keeps writing
    to the terminal directly (so the progress display still sees one). Does nothing when
    stderr is not this process's own file descriptor 2 (the CLI called in-process)."""

    _HEADER = re.compile(rb"^thread '.*' (\(\d+\) )?panicked at ")
    _NOTE = re.compile(rb"^note: (run with `RUST_BACKTRACE|Some details are omitted)")

    def __init__(self) -> None:
        self.active = False
        self.skip = 0
        self.closing = threading.Event()

    def __enter__(self) -> RustPanicFilter:
        current: TextIO = sys.stderr
        try:
            if current is not sys.__stderr__ or current.fileno() != 2:
                return self
        except (AttributeError, OSError, ValueError):
            return self
        current.flush()
        self.saved_stderr = current
        self.terminal = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        sys.stderr = open(  # noqa: SIM115 - closed in __exit__
            os.dup(self.terminal),
            "w",
            buffering=1,
            encoding=self.saved_stderr.encoding,
            errors="backslashreplace",
        )
        self.thread = threading.Thread(target=self._pump, args=(read_end,), daemon=True)
        self.thread.start()
        self.active = True
        return self

    def _pump(self, read_end: int) -> None:
        import select

        pending = b""
        try:
            while True:
                ready, _, _ = select.select([read_end], [], [], 0.1)
                if not ready:
                    if self.closing.is_set():
                        break  # nothing left to copy (the resource tracker may hold the pipe)
                    continue
                data = os.read(read_end, 65536)
                if not data:
                    break
                *lines, pending = (pending + data).split(b"\n")
                for line in lines:
                    self._copy(line + b"\n")
        finally:
            if pending:
                self._copy(pending)
            os.close(read_end)

    def _copy(self, line: bytes) -> None:
        if self._HEADER.match(line):
            self.skip = 2  # the panic's message follows on its own line, then maybe a note
            return
        if self.skip == 2:
            self.skip = 1
            return
        if self.skip == 1 and self._NOTE.match(line):
            self.skip = 0
            return
        self.skip = 0
        with contextlib.suppress(OSError):
            os.write(self.terminal, line)

    def __exit__(self, *exc: object) -> None:
        if not self.active:
            return
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        # the replacement stays open: logging's handler may still hold it until exit
        sys.stderr = self.saved_stderr
        os.dup2(self.terminal, 2)  # this process writes to the terminal again
        self.closing.set()
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: stop copying
            self.thread.join(timeout=2)
