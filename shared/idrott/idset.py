"""A set of ids in 16 bytes each, for the per-file bookkeeping of the export (pure).

The XML writer remembers which persons are already in the file it writes, and the streamed XSD
check remembers every person and activity id of the file it reads. A file holds up to ~10 000
persons (``IDROTTONLINE_MAX_FILE_BYTES``), and a Python ``set`` of those strings costs ~150 bytes
an id (the string, its slot, the table's slack): that was most of what a big club's export grew by.
:class:`IdSet` keeps a 128-bit BLAKE2b digest of each id instead, in two sorted ``array('Q')``
halves per 1 024 ids (never merged: no second copy while merging; a 10 MB file has about ten)
plus a set of the most recent digests, and a Bloom filter (2 bytes an id) in front, so an id that
is not there (most lookups) is answered without searching the runs. Two different ids
share a digest with odds of about n² / 2¹²⁹ (~10⁻³¹ for a file): treated as impossible.
"""

from __future__ import annotations

import bisect
import hashlib
from array import array

__all__ = ["IdSet"]

#: Recent digests held as Python ints before they are merged into the sorted arrays.
_RECENT = 1024
_MASK = (1 << 64) - 1
#: Bloom filter bits per id (two probes): ~1.4 % of misses still search the runs.
_BLOOM_BITS_PER_ID = 16


class IdSet:
    """Ids, remembered by digest: :meth:`add` (``False`` if already there) and ``in``."""

    __slots__ = ("_bits", "_n", "_recent", "_runs", "_salt")

    def __init__(self, salt: bytes = b"") -> None:
        self._salt = salt[:16]  # BLAKE2b's personalisation: separate uses hash differently
        self._runs: list[tuple[array[int], array[int]]] = []  # sorted (high, low) halves, never merged
        self._recent: set[int] = set()
        self._n = 0
        self._bits = bytearray(_BLOOM_BITS_PER_ID * _RECENT // 8)

    def _digest(self, value: str) -> int:
        h = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=16, person=self._salt)
        return int.from_bytes(h.digest())

    def _positions(self, d: int) -> tuple[int, int]:
        m = len(self._bits) * 8 - 1  # a power of two, less one
        return d & m, (d >> 64) & m

    def _maybe(self, d: int) -> bool:
        """The Bloom filter: ``False`` means surely absent, so most misses skip the runs."""
        a, b = self._positions(d)
        bits = self._bits
        return bool(bits[a >> 3] & (1 << (a & 7))) and bool(bits[b >> 3] & (1 << (b & 7)))

    def _mark(self, d: int) -> None:
        a, b = self._positions(d)
        self._bits[a >> 3] |= 1 << (a & 7)
        self._bits[b >> 3] |= 1 << (b & 7)

    def _in_runs(self, d: int) -> bool:
        hi, lo = d >> 64, d & _MASK
        for his, los in self._runs:
            i = bisect.bisect_left(his, hi)
            while i < len(his) and his[i] == hi:
                if los[i] == lo:
                    return True
                i += 1
        return False

    def _has(self, d: int) -> bool:
        return self._maybe(d) and (d in self._recent or self._in_runs(d))

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and self._has(self._digest(value))

    def add(self, value: str) -> bool:
        """Remember ``value``; ``False`` if it was there already."""
        d = self._digest(value)
        if self._has(d):
            return False
        self._recent.add(d)
        self._n += 1
        if self._n * _BLOOM_BITS_PER_ID > len(self._bits) * 8:
            self._grow()
        else:
            self._mark(d)
        if len(self._recent) >= _RECENT:
            # a new sorted run: merging runs would hold two copies at once, and a file has few runs
            ordered = sorted(self._recent)
            self._runs.append((array("Q", (x >> 64 for x in ordered)), array("Q", (x & _MASK for x in ordered))))
            self._recent = set()
        return True

    def _grow(self) -> None:
        """Twice the filter, its bits set again from the digests held."""
        self._bits = bytearray(len(self._bits) * 2)
        for his, los in self._runs:
            for hi, lo in zip(his, los, strict=True):
                self._mark(hi << 64 | lo)
        for d in self._recent:
            self._mark(d)

    def __len__(self) -> int:
        return self._n
