"""Split a large uncompressed CSV/TSV or JSON-lines file into byte ranges of whole records, so
that parallel workers can each parse one range (:func:`split_csv`, :func:`split_lines`) and read
it back (:func:`read_range`). Pure: it reads the file and nothing else.

A worker parses ``split.header + read_range(path, start, end)`` (the header is repeated in
front of every range) and the concatenation of the ranges' rows is the file's rows.

**CSV record boundaries.** A boundary is the offset just after a ``\\n`` byte at which the
number of quote bytes since the start of the file is even (RFC 4180: a quote inside a quoted
field is doubled, which keeps the parity). That handles quoted fields holding newlines,
delimiters and doubled quotes, CRLF line ends (the split falls after the ``\\n``) and any
ASCII-compatible encoding in which the quote and ``\\n`` bytes never occur inside another
character (UTF-8, latin-1, cp1252, Shift-JIS, GBK...). The delimiter plays no part, so TSV and
any other delimiter split the same way.

The parity rule assumes RFC 4180 quoting: a field is either wholly quoted or holds no quote. A
stray quote inside an unquoted field (``12" pipe``) is a literal character to pyarrow: a quote
opens a quoted field only at the start of a field. Given the ``delimiter``, the splitter checks
every quote before it places a boundary in a file it splits: a quote that would open a quoted
field (the count before it even) but does not follow a delimiter, a line end or a closing quote
is literal, as is a quote right after a literal one, and literal quotes are left out of the
count -- which then follows pyarrow's parser exactly. The check is vectorized (numpy, or
pyarrow's kernels, over 4 MiB slices); only literal quotes, if any, are followed one by one.
Without a ``delimiter`` the quotes are not checked (every quote counts).

Quotes are counted at C speed (``bytes.count`` over 1 MiB slices of an ``mmap``); between a
range's nominal end and its boundary the search jumps from quote to quote and newline to newline
with ``mmap.find`` (memchr). Memory stays flat whatever the file's size.

**Conventions** (the same for both splitters):

* ranges are ``[start, end)`` offsets, in order, contiguous, never empty, covering every byte
  from ``len(header)`` to the end of the file; a range ends at the first boundary at or after
  ``start + part_bytes`` and the last one ends at EOF, whether or not the file ends in a line
  end;
* when there are no bytes after the header (an empty file, a header-only file) ``ranges`` is
  ``()``: nothing to read, ``header`` alone still gives the column names;
* when the bytes after the header are fewer than ``2 * part_bytes`` they are one range;
* when a safe split is impossible (an escape character, an encoding that is not
  ASCII-compatible, ``\\r`` line ends) ``header`` is ``b""`` and the one range is the whole
  file, header record included: ``header + read_range(...)`` is still the file;
* :attr:`Split.safe` is True exactly when there is more than one range; :attr:`Split.reason`
  tells a small file from an impossible split.

A range can hold nothing but empty lines (a run of at least ``part_bytes`` of them). pyarrow
skips empty lines, but without a header it refuses such a block ("Empty CSV file ... cannot
infer number of columns"): a reader takes it as no rows. Without a header pyarrow also refuses
a block that is a single record with no line end (a last range, when the file does not end in
one): a reader adds ``b"\\n"`` to it.
"""

from __future__ import annotations

import bisect
import codecs
import contextlib
import functools
import mmap
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Split", "read_range", "split_csv", "split_lines"]

#: quotes are counted over slices of this many bytes (one copy at a time: memory stays flat)
_BLOCK = 1 << 20
_NL = b"\n"
_CR = b"\r"


@dataclass(frozen=True)
class Split:
    """How a file splits: the header record, the byte ranges after it, and why."""

    #: the header record's bytes including its line end (and a UTF-8 BOM, which pyarrow skips);
    #: ``b""`` when ``header=False`` and when the split fell back to the whole file as one range
    header: bytes
    #: ``[start, end)`` byte offsets of whole records: in order, contiguous, never empty,
    #: covering every byte after the header up to EOF; ``()`` when there is none
    ranges: tuple[tuple[int, int], ...]
    #: why it was split this way, or why not
    reason: str

    @property
    def safe(self) -> bool:
        """True when the file was split into more than one range.

        False for one range or none, whether the file is simply small (or has no record
        boundary after the first ``part_bytes``) or a safe split is impossible; :attr:`reason`
        says which.
        """
        return len(self.ranges) > 1


def read_range(path: str, start: int, end: int) -> bytes:
    """The bytes ``[start, end)`` of the file at ``path``.

    Raises ValueError for a negative or reversed range and EOFError when the file ends before
    ``end`` (it changed since it was split).
    """
    if start < 0 or end < start:
        raise ValueError(f"a byte range needs 0 <= start <= end, not [{start}, {end})")
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    if len(data) != end - start:
        raise EOFError(
            f"{path} ends at byte {start + len(data)}, before the end of the range "
            f"[{start}, {end}): the file changed since it was split"
        )
    return data


def split_csv(
    path: str,
    part_bytes: int,
    *,
    quote: str | None = '"',
    escape: str | None = None,
    header: bool = True,
    encoding: str = "utf8",
    delimiter: str | None = None,
) -> Split:
    """Split a CSV/TSV file into ranges of about ``part_bytes`` bytes at record boundaries.

    ``quote`` is the quote character (one ASCII character; None: no quoting, every ``\\n`` is a
    boundary). ``header``: the first record is the header (found with the same boundary rule,
    so it may hold quoted newlines). ``encoding`` is the file's encoding as pyarrow is told it.
    ``delimiter``: the field delimiter; given, a quote inside an unquoted field is found and
    read as the literal it is (see the module); None: every quote counts.

    Falls back to the whole file as one range (``header=b""``, see the module's conventions)
    when an ``escape`` character is set (an escaped quote breaks the parity), when the encoding
    is not ASCII-compatible (utf-16, utf-32, EBCDIC, iso-2022-*: the quote or ``\\n`` byte is
    not the character or can occur inside another one), and when the header record ends with a
    bare ``\\r`` (``\\r`` line ends, with or without a ``\\n`` later in the file).

    Unbalanced quotes (an odd count at EOF: a malformed file) neither loop nor fail: every
    boundary placed is still one where the quotes balance, the last range runs from the last
    such boundary to EOF and holds the unclosed quote (pyarrow then fails on that range as it
    would on the whole file), and the reason says so. If the header record itself never closes
    its quotes, the header is the whole file and there are no ranges. A file that is one range
    because it is small is not read past its header, so nothing is said about its quotes.

    Raises ValueError for ``part_bytes < 1``, a quote that is not one ASCII character (or is a
    line end) and an unknown encoding; OSError when the file cannot be read.
    """
    _check_part_bytes(part_bytes)
    qb = _quote_byte(quote)
    size = os.path.getsize(path)
    if size == 0:
        return Split(b"", (), "no ranges: the file is empty")
    if escape is not None:
        return _whole(
            size,
            f"one range: the escape character {escape!r} makes record boundaries ambiguous "
            "(an escaped quote or line end breaks the quote parity)",
        )
    problem = _encoding_problem(encoding, quote)
    if problem:
        return _whole(size, f"one range: {problem}")
    db = None
    if delimiter is not None and qb is not None:
        db = delimiter.encode("ascii") if delimiter.isascii() and len(delimiter) == 1 else b""
        if not db or db in (qb, _NL, _CR):
            return _whole(
                size,
                f"one range: the delimiter {delimiter!r} is not one ASCII character other than "
                "the quote and a line end, so quotes inside fields cannot be checked",
            )
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return _split_csv(mm, part_bytes, qb, header, db)


def split_lines(path: str, part_bytes: int, encoding: str = "utf8") -> Split:
    """Split a JSON-lines file into ranges of about ``part_bytes`` bytes at line ends.

    Every ``\\n`` is a record boundary (a JSON string cannot hold a raw newline); a ``\\r``
    before it stays at the end of its range. There is no header: :attr:`Split.header` is
    ``b""``. Falls back to the whole file as one range when ``encoding`` is not
    ASCII-compatible (a ``\\n`` byte can be part of another character). Raises ValueError for
    ``part_bytes < 1`` and an unknown encoding; OSError when the file cannot be read.
    """
    _check_part_bytes(part_bytes)
    size = os.path.getsize(path)
    if size == 0:
        return Split(b"", (), "no ranges: the file is empty")
    problem = _encoding_problem(encoding, None)
    if problem:
        return _whole(size, f"one range: {problem}")
    if size < 2 * part_bytes:
        return Split(b"", ((0, size),), _small(size, part_bytes, "the file's"))
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        ranges, _ = _ranges(mm, 0, part_bytes, None)
    return Split(b"", ranges, _done(ranges, part_bytes, "line ends"))


# -- the work ---------------------------------------------------------------------------------


def _split_csv(
    mm: mmap.mmap, part_bytes: int, qb: bytes | None, header: bool, db: bytes | None = None
) -> Split:
    size = len(mm)
    if mm.find(_NL) < 0 and _bare_cr(mm, size, qb):
        return _whole(size, "one range: the file has \\r line ends and no \\n")
    found = _split_head(mm, qb, header, ())
    lits: Sequence[int] = ()
    to_eof = found.ranges == () if isinstance(found, Split) else len(found) == size
    if to_eof and header and db is not None and qb is not None:
        # the header record runs to EOF: unless a quote in it is literal (the scan says)
        checked = _literal_quotes(mm, qb, db)
        if checked:
            lits = checked
            found = _split_head(mm, qb, header, lits)
    if isinstance(found, Split):
        return found
    head = found
    start = len(head)
    data = size - start
    if data == 0:
        return Split(head, (), "no ranges: the file holds only the header record")
    if data < 2 * part_bytes:
        return Split(head, ((start, size),), _small(data, part_bytes, "the data's"))
    if db is not None and qb is not None and not lits:
        checked = _literal_quotes(mm, qb, db)
        if checked is None:
            return _whole(
                size,
                f"one range: more than {_MAX_LITERALS:,} quotes are inside unquoted fields "
                "(literal characters to the CSV parser)",
            )
        lits = checked
        if lits and lits[0] < start:  # the header holds one: found again without it
            found = _split_head(mm, qb, header, lits)
            if isinstance(found, Split):
                return found
            head = found
            start = len(head)
            if start == size:
                return Split(head, (), "no ranges: the file holds only the header record")
    ranges, odd_at_eof = _ranges(mm, start, part_bytes, qb, lits)
    reason = _done(ranges, part_bytes, "record boundaries" if qb else "line ends (no quoting)")
    if lits:
        reason += (
            f"; {len(lits)} quote{'s' if len(lits) != 1 else ''} inside unquoted fields (the "
            f"first at byte {lits[0]}) read as literal characters, as the CSV parser reads them"
        )
    if odd_at_eof:
        last = ranges[-1]
        reason += (
            f"; the quotes do not balance at EOF (an unclosed quote: a malformed file), so no "
            f"boundary was placed after the last one where they balance and the last range "
            f"[{last[0]}, {last[1]}) holds the unclosed quote"
        )
    return Split(head, ranges, reason)


def _split_head(
    mm: mmap.mmap, qb: bytes | None, header: bool, lits: Sequence[int]
) -> bytes | Split:
    """The header record's bytes (``b""`` without a header), or the Split of a file that is
    the header alone (or cannot be split: a bare ``\\r`` line end)."""
    size = len(mm)
    head = b""
    if header:
        end = _next_boundary(mm, 0, False, qb, lits)
        if end < 0:  # the header record runs to EOF
            unbalanced = qb is not None and _count(mm, qb, 0, size) % 2 == 1
            head = mm[:]
            if _header_bare_cr(head, qb):
                return _whole(size, "one range: the header record ends with a bare \\r line end")
            why = "the file holds only the header record (no line end after it)"
            if unbalanced:
                why = (
                    "the header record never closes its quotes (an odd number of quotes to EOF: "
                    "a malformed file), so it runs to the end of the file"
                )
            return Split(head, (), f"no ranges: {why}")
        head = mm[:end]
        if _header_bare_cr(head, qb):
            return _whole(size, "one range: the header record ends with a bare \\r line end")
    return head


def _ranges(
    mm: mmap.mmap, start: int, part_bytes: int, qb: bytes | None, lits: Sequence[int] = ()
) -> tuple[tuple[tuple[int, int], ...], bool]:
    """The ranges from ``start`` (a boundary: the quotes balance there) to EOF, and whether the
    quote count is odd at EOF. ``lits``: the offsets of literal quotes (not counted), sorted."""
    size = len(mm)

    def count(start: int, end: int) -> int:
        assert qb is not None
        return _count_structural(mm, qb, start, end, lits)

    ranges: list[tuple[int, int]] = []
    while True:
        target = start + part_bytes  # the range ends at the first boundary >= target
        if target >= size:
            ranges.append((start, size))
            odd_at_eof = qb is not None and count(start, size) % 2 == 1
            break
        nl_from = target - 1  # a \n at target - 1 makes a boundary at target
        odd = qb is not None and count(start, nl_from) % 2 == 1
        end = _next_boundary(mm, nl_from, odd, qb, lits)
        if end < 0:
            ranges.append((start, size))
            odd_at_eof = qb is not None and (odd ^ (count(nl_from, size) % 2 == 1))
            break
        ranges.append((start, end))
        _release(mm, end)
        start = end
        if end == size:
            odd_at_eof = False
            break
    return tuple(ranges), odd_at_eof


def _release(mm: mmap.mmap, upto: int) -> None:
    """Let go of the mapped pages before ``upto`` (they stay in the page cache): a file's pages
    that were read through the mapping count in this process's RSS until then, so splitting a
    file several times the size of memory would otherwise look like holding it all."""
    page = mmap.PAGESIZE
    end = upto // page * page
    if end > 0 and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        with contextlib.suppress(OSError, ValueError):  # else: let go when the map closes
            mm.madvise(mmap.MADV_DONTNEED, 0, end)


def _next_boundary(
    mm: mmap.mmap, pos: int, odd: bool, qb: bytes | None, lits: Sequence[int] = ()
) -> int:
    """The first boundary after a ``\\n`` at or after ``pos`` (``odd``: the quote count before
    ``pos`` is odd), or -1 when there is none before EOF; the quotes at ``lits`` (sorted) are
    literal characters (they are outside quoted fields, so only met there).

    Jumps from quote to quote and newline to newline (memchr), so a quoted field full of
    newlines costs one search, not one per line."""
    if qb is None:
        nl = mm.find(_NL, pos)
        return nl + 1 if nl >= 0 else -1
    nl = -1
    while True:
        if odd:  # inside a quoted field: skip to its closing quote
            q = mm.find(qb, pos)
            if q < 0:
                return -1
            pos = q + 1
        if nl < pos:
            nl = mm.find(_NL, pos)
            if nl < 0:
                return -1
        q = mm.find(qb, pos, nl)
        while q >= 0 and lits and _member(lits, q):
            q = mm.find(qb, q + 1, nl)
        if q < 0:  # no quote before the newline: the quotes balance there
            return nl + 1
        pos = q + 1
        odd = True


def _count(mm: bytes | mmap.mmap, qb: bytes, start: int, end: int) -> int:
    """How many ``qb`` bytes in ``[start, end)``, counted a slice at a time."""
    n = 0
    for i in range(start, end, _BLOCK):
        n += mm[i : min(i + _BLOCK, end)].count(qb)
    return n


def _member(lits: Sequence[int], at: int) -> bool:
    i = bisect.bisect_left(lits, at)
    return i < len(lits) and lits[i] == at


def _count_structural(mm: mmap.mmap, qb: bytes, start: int, end: int, lits: Sequence[int]) -> int:
    """How many quotes in ``[start, end)`` are not literal (``lits``: sorted offsets)."""
    n = _count(mm, qb, start, end)
    if lits:
        n -= bisect.bisect_left(lits, end) - bisect.bisect_left(lits, start)
    return n


#: literal quotes followed before a split gives up (their offsets are kept in a list)
_MAX_LITERALS = 1 << 20


def _literal_quotes(mm: mmap.mmap, qb: bytes, db: bytes) -> list[int] | None:
    """The offsets of the quotes pyarrow's parser reads as literal characters, in order (None:
    more than :data:`_MAX_LITERALS`).

    pyarrow opens a quoted field only with a quote at the start of a field; inside one, a
    doubled quote is a quote and a single one closes it (what follows up to the delimiter is
    unquoted: a quote there is literal). With every quote counted, the quotes that open a
    field are those with an even count before them; each must follow a delimiter, a line end,
    the start of the data (after a UTF-8 BOM) or a closing quote. The first one that does
    not is literal; without it the count's parity flips for every later quote, and a quote
    right after it is literal too. Per slice of :data:`_SCAN` bytes, vectorized (numpy when
    it is installed, pyarrow's kernels otherwise): the quotes, and the ranks of those that do
    not follow such a byte; only a slice whose quotes of the opening parity include one is
    followed quote by quote (bisecting those ranks of either parity)."""
    size = len(mm)
    starts = bytes({db[0], _NL[0], _CR[0], qb[0]})
    data_start = 3 if mm[:3] == b"\xef\xbb\xbf" else 0
    out: list[int] = []
    inside = False  # in a quoted field at the start of the slice
    for base in range(0, size, _SCAN):
        lo = max(0, base - 1)  # one byte before the slice: the byte before its first quote
        block = mm[lo : min(base + _SCAN, size)]
        _release(mm, lo)
        if block.find(qb, base - lo) < 0:
            continue
        n, bad, offsets = _quote_ranks(block, base - lo, qb[0], starts, data_start - lo)
        if not n:
            continue
        h = 1 if inside else 0  # quotes of rank parity h would open a field
        follows = bool(out) and out[-1] == base - 1 and block[base - lo] == qb[0]
        if not follows and not _any_of_parity(bad, h):
            inside ^= n % 2 == 1  # every quote counts: the parity moves on
            continue
        at = offsets()
        fails = _to_list(bad)
        by_parity = ([i for i in fails if i % 2 == 0], [i for i in fails if i % 2 == 1])
        literal = 0
        cur = 0
        while True:
            if follows and cur == 0:
                j = 0  # right after the last literal quote of the slice before
            else:
                lst = by_parity[h]
                k = bisect.bisect_left(lst, cur)
                if k == len(lst):
                    break
                j = lst[k]
            out.append(at[j] + lo)
            literal += 1
            h ^= 1
            cur = j + 1
            while cur < n and at[cur] == at[cur - 1] + 1:  # right after a literal quote
                out.append(at[cur] + lo)
                literal += 1
                h ^= 1
                cur += 1
            follows = False
            if len(out) > _MAX_LITERALS:
                return None
        inside ^= (n - literal) % 2 == 1
    return out


#: bytes scanned at a time for literal quotes
_SCAN = 1 << 22


def _quote_ranks(
    block: bytes, first: int, q: int, starts: bytes, data_start: int
) -> tuple[int, Any, Callable[[], list[int]]]:
    """The quotes of ``block[first:]``: how many, the ranks (among them) of those whose byte
    before is not in ``starts`` (and not at ``data_start``), as an array, and a function
    giving their offsets in ``block``."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy comes with most installs; pyarrow suffices
        return _quote_ranks_arrow(block, first, q, starts, data_start)
    arr = np.frombuffer(block, dtype=np.uint8)
    at = np.flatnonzero(arr == q)
    if first:
        at = at[at >= first]
    table = np.zeros(256, dtype=bool)
    table[list(starts)] = True
    ok = table[arr[np.maximum(at - 1, 0)]] | (at == data_start) | (at == 0)
    bad = np.flatnonzero(~ok)
    return len(at), bad, lambda: [int(v) for v in at.tolist()]


def _quote_ranks_arrow(
    block: bytes, first: int, q: int, starts: bytes, data_start: int
) -> tuple[int, Any, Callable[[], list[int]]]:
    """:func:`_quote_ranks` with pyarrow's kernels."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.Array.from_buffers(pa.uint8(), len(block), [None, pa.py_buffer(block)])
    at = pc.indices_nonzero(pc.equal(arr, q)).cast(pa.int64())
    if first:
        at = pc.filter(at, pc.greater_equal(at, first))
    prev = arr.take(pc.max_element_wise(pc.subtract(at, 1), 0))
    ok = pc.or_(
        pc.is_in(prev, value_set=pa.array(list(starts), pa.uint8())),
        pc.or_(pc.equal(at, data_start), pc.equal(at, 0)),
    )
    bad = pc.indices_nonzero(pc.invert(ok)).cast(pa.int64())
    return len(at), bad, lambda: [int(v) for v in at.to_pylist()]


def _any_of_parity(ranks: Any, h: int) -> bool:
    """Whether ``ranks`` (a numpy or pyarrow array) holds one whose parity is ``h``."""
    if hasattr(ranks, "to_pylist"):
        import pyarrow.compute as pc

        return bool(len(ranks)) and bool(pc.any(pc.equal(pc.bit_wise_and(ranks, 1), h)).as_py())
    return bool(((ranks & 1) == h).any())


def _to_list(ranks: Any) -> list[int]:
    return [int(v) for v in (ranks.to_pylist() if hasattr(ranks, "to_pylist") else ranks.tolist())]


def _bare_cr(buf: bytes | mmap.mmap, end: int, qb: bytes | None) -> bool:
    """Whether ``buf[:end]`` holds a ``\\r`` outside quotes (a line end to pyarrow)."""
    pos = 0
    odd = False
    while True:
        cr = buf.find(_CR, pos, end)
        if cr < 0:
            return False
        if qb is not None:
            odd ^= _count(buf, qb, pos, cr) % 2 == 1
        if not odd:
            return True
        pos = cr + 1


def _header_bare_cr(head: bytes, qb: bytes | None) -> bool:
    """Whether the header record holds a line end before its own (a ``\\r`` outside quotes
    other than the ``\\r`` of a final CRLF): then it is really a ``\\r``-terminated record
    followed by more records."""
    crlf = head.endswith(b"\r\n")
    return _bare_cr(head, len(head) - (2 if crlf else 1 if head.endswith(_NL) else 0), qb)


def _whole(size: int, reason: str) -> Split:
    return Split(b"", ((0, size),), reason)


def _small(data: int, part_bytes: int, what: str) -> str:
    return f"one range: {what} {data} bytes are fewer than 2 * part_bytes ({part_bytes})"


def _done(ranges: tuple[tuple[int, int], ...], part_bytes: int, how: str) -> str:
    if len(ranges) == 1:
        return f"one range: no boundary at or after the first {part_bytes} bytes ({how})"
    return f"{len(ranges)} ranges of about {part_bytes} bytes, split at {how}"


def _check_part_bytes(part_bytes: int) -> None:
    if isinstance(part_bytes, bool) or not isinstance(part_bytes, int) or part_bytes < 1:
        raise ValueError(f"part_bytes must be a positive integer, not {part_bytes!r}")


def _quote_byte(quote: str | None) -> bytes | None:
    if quote is None:
        return None
    if len(quote) != 1 or not quote.isascii() or quote in "\r\n":
        raise ValueError(f"quote must be one ASCII character other than a line end, not {quote!r}")
    return quote.encode("ascii")


@functools.lru_cache(maxsize=32)
def _encoding_problem(encoding: str, quote: str | None) -> str | None:
    """Why the byte-level rule cannot be trusted in ``encoding``, or None when it can: the
    quote, ``\\n`` and ``\\r`` must be their ASCII bytes, and no other character of the Basic
    Multilingual Plane may put one of those bytes into the file."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}") from None
    if name in ("utf-8", "ascii", "latin-1", "iso8859-1", "cp1252"):
        return None
    special = "\n\r" + (quote or "")
    not_ascii = f"the encoding {encoding!r} is not ASCII-compatible"
    try:
        encoder = codecs.getincrementalencoder(encoding)(errors="ignore")
        encoder.encode("a")  # any signature (a BOM) comes out here
        for ch in special:
            if encoder.encode(ch) != ch.encode("ascii"):
                return f"{not_ascii} ({ch!r} is not the byte {ch.encode('ascii')!r})"
        others = "".join(
            chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF and chr(c) not in special
        )
        encoded = encoder.encode(others, True)
    except Exception as exc:  # not a text encoding (base64, rot13...) or no incremental encoder
        return f"{not_ascii} ({type(exc).__name__}: {exc})"
    if not isinstance(encoded, bytes):
        return f"{not_ascii} (it does not encode text to bytes)"
    for ch in special:
        if ch.encode("ascii") in encoded:
            return f"{not_ascii} (other characters can contain the byte {ch.encode('ascii')!r})"
    return None
