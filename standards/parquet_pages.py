"""What a Parquet file's pages say of themselves, read from their headers before any page is decompressed.

A Parquet file's footer gives each column chunk's size once uncompressed and its number of values, and the check
bounds a file by them (``standards.reading``); but a reader sizes what it decompresses and decodes by each page's
own header, which the footer does not bind. A 30 KB file whose footer gave a column 1,000 bytes, and whose one page
of it said 900 MB, took `collab-check` to 2.9 GB. So the check walks each page header of the columns it reads
(``page_claims``), and refuses a file whose pages claim more than its footer does, before pyarrow reads a page.

The headers are Thrift structures in its compact protocol, as the format defines them (``parquet.thrift``:
``PageHeader``); only the three fields the bound needs are read, and every other field is skipped by its type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

# PageHeader's fields: 2 uncompressed_page_size, 3 compressed_page_size (both i32); a data page's values are the
# first field (an i32) of its data_page_header (5) or data_page_header_v2 (8).
_UNCOMPRESSED, _COMPRESSED, _DATA_PAGE, _DATA_PAGE_V2 = 2, 3, 5, 8
_NUM_VALUES = 1
# The compact protocol's types (Thrift's TCompactProtocol).
_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(13)
# Deeper than any header the format defines (a page's statistics are its deepest part, three structs down): a
# hostile header nested without end stops here, not at Python's recursion limit.
_MAX_DEPTH = 8
# The longest a page header may be: one of pyarrow's, with its page's statistics (which it cuts to 4 KB a value), is
# well under it.
_MAX_HEADER_BYTES = 64 * 1024
_READ_AHEAD = 256


class MalformedPages(ValueError):
    """A column chunk's page headers are not the format's, or run past the chunk."""


class TooManyPages(ValueError):
    """A column chunk has more pages than its reader was willing to read the headers of."""


@dataclass(frozen=True)
class PageClaim:
    """What one page's header says it holds: its size once uncompressed, and its values (0 for a dictionary page)."""

    uncompressed_bytes: int
    values: int


def page_claims(handle: BinaryIO, start: int, length: int, most: int) -> list[PageClaim]:
    """Each page of the column chunk of ``length`` bytes at ``start`` of the open file, as its header claims it.

    Reads the headers alone, each page's data skipped by the size its header gives: a chunk of many pages costs its
    pages' headers, some tens of bytes each. Raises ``MalformedPages`` for a header that is not the format's, or a
    page that runs past the chunk, and ``TooManyPages`` once it has read ``most`` pages and more follow."""
    claims = []
    end = start + length
    position = start
    while position < end:
        if len(claims) >= most:
            raise TooManyPages(f"more than {most:,} pages")
        handle.seek(position)
        header = _Header(handle, end)
        fields = header.struct(depth=0)
        compressed = fields.get(_COMPRESSED)
        uncompressed = fields.get(_UNCOMPRESSED)
        if not isinstance(compressed, int) or not isinstance(uncompressed, int) or compressed < 0 or uncompressed < 0:
            raise MalformedPages("a page header without its sizes")
        page = fields.get(_DATA_PAGE) or fields.get(_DATA_PAGE_V2) or {}
        values = page.get(_NUM_VALUES, 0) if isinstance(page, dict) else 0
        if not isinstance(values, int) or values < 0:  # a negative count would hide another page's from a sum
            raise MalformedPages("a data page header without its count of values")
        claims.append(PageClaim(uncompressed, values))
        position += header.read_bytes + compressed
        if position > end:
            raise MalformedPages("a page runs past its column chunk")
    return claims


class _Header:
    """One page header read from ``handle`` (positioned at it), never past ``end`` nor ``_MAX_HEADER_BYTES``: read
    ``_READ_AHEAD`` bytes at a time (a header is mostly some tens of bytes), not byte by byte."""

    def __init__(self, handle: BinaryIO, end: int) -> None:
        self._handle = handle
        self._room = min(end - handle.tell(), _MAX_HEADER_BYTES)
        self._held = b""
        self.read_bytes = 0

    def struct(self, depth: int) -> dict[int, object]:
        """The struct's fields by id: integers and structs as read; every other value skipped (given as None)."""
        if depth > _MAX_DEPTH:
            raise MalformedPages("a page header nested too deep")
        fields: dict[int, object] = {}
        field = 0
        while (kind_byte := self._byte()) & 0x0F != _STOP:
            delta, kind = kind_byte >> 4, kind_byte & 0x0F
            field = field + delta if delta else self._zigzag(self._varint())
            fields[field] = self._value(kind, depth)
        return fields

    def _value(self, kind: int, depth: int) -> object:
        if kind in (_TRUE, _FALSE):
            return None  # a field's boolean is in its type
        if kind == _BYTE:
            self._skip(1)
        elif kind in (_I16, _I32, _I64):
            return self._zigzag(self._varint())
        elif kind == _DOUBLE:
            self._skip(8)
        elif kind == _BINARY:
            self._skip(self._varint())
        elif kind in (_LIST, _SET):
            size_and_kind = self._byte()
            size = size_and_kind >> 4 if size_and_kind >> 4 != 15 else self._varint()
            for _ in range(size):
                self._element(size_and_kind & 0x0F, depth)
        elif kind == _MAP:
            size = self._varint()
            if size:
                kinds = self._byte()
                for _ in range(size):
                    self._element(kinds >> 4, depth)
                    self._element(kinds & 0x0F, depth)
        elif kind == _STRUCT:
            return self.struct(depth + 1)
        else:
            raise MalformedPages(f"a page header with a field of unknown type {kind}")
        return None

    def _element(self, kind: int, depth: int) -> None:
        """One element of a list, set or map: a boolean there takes a byte of its own."""
        if kind in (_TRUE, _FALSE):
            self._skip(1)
        else:
            self._value(kind, depth + 1)

    def _byte(self) -> int:
        if self.read_bytes < len(self._held):
            self.read_bytes += 1
            return self._held[self.read_bytes - 1]
        return self._take(1)[0]

    def _varint(self) -> int:
        value = 0
        for shift in range(0, 70, 7):
            byte = self._byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
        raise MalformedPages("a page header with an integer longer than ten bytes")

    @staticmethod
    def _zigzag(value: int) -> int:
        return (value >> 1) ^ -(value & 1)

    def _skip(self, count: int) -> None:
        self._take(count)

    def _take(self, count: int) -> bytes:
        if count > self._room - self.read_bytes:
            raise MalformedPages("a page header runs past its column chunk")
        while len(self._held) < self.read_bytes + count:
            more = self._handle.read(min(max(_READ_AHEAD, count), self._room - len(self._held)))
            if not more:
                raise MalformedPages("a page header runs past the end of the file")
            self._held += more
        self.read_bytes += count
        return self._held[self.read_bytes - count : self.read_bytes]
