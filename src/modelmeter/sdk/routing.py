"""Which collector an event goes to: rendezvous (highest-random-weight) hashing of its id.

A model whose traffic needs several collectors is spread over them by prediction id: every
event of an id (its prediction and its label) goes to the same collector, the one that holds
the prediction and joins the label with it. The rule, exact so that another language or a
proxy can reproduce it (docs/sdk.md, "Several collectors"):

* the *key* of a collector is its base URL without ``user:password@`` and without trailing
  slashes (``http://c1:8000/`` -> ``http://c1:8000``);
* the *weight* of a collector for an id is the BLAKE2b hash with an 8-byte digest (no key,
  salt or personalization) of the UTF-8 bytes of ``key + "\\n" + id``, read as a big-endian
  unsigned 64-bit integer;
* the id goes to the collector of the highest weight (on a tie, which has a chance of about
  2**-64, to the smallest key in byte order).

Adding a collector moves only the ids whose new weight beats their old maximum, about one in
N + 1, and all of them to the new collector; removing one moves only its own ids.

>>> hex(weight("http://c1:8000", "p-1"))  # BLAKE2b-64 of b"http://c1:8000\\np-1"
'0x63740f62b1c61be4'
>>> router = Router(["http://c1:8000", "http://c2:8000/", "http://c3:8000"])
>>> [hex(weight(key, "p-1")) for key in router.keys]
['0x63740f62b1c61be4', '0xf17bc073e4866ac9', '0xb2849fd3da82653d']
>>> router.index("p-1"), router.keys[router.index("p-1")]
(1, 'http://c2:8000')
>>> router.partition(["p-1", "p-2", "p-3", "p-4"])  # the positions each collector gets
[[1], [0, 2], [3]]
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

DIGEST_SIZE = 8
_Item = TypeVar("_Item", bound=tuple[Any, ...])


def collector_key(url: str) -> str:
    """The key a collector is hashed by: its URL without credentials and trailing slashes.

    >>> collector_key("http://user:pw@c1:8000/mm/")
    'http://c1:8000/mm'
    >>> collector_key("https://c2.example")
    'https://c2.example'
    """
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=netloc)).rstrip("/")


def weight(key: str, pid: str) -> int:
    """The weight of the collector ``key`` for the prediction id ``pid`` (unsigned 64 bits)."""
    digest = hashlib.blake2b(f"{key}\n{pid}".encode(), digest_size=DIGEST_SIZE).digest()
    return int.from_bytes(digest, "big")


class Router:
    """Rendezvous hashing of prediction ids over collector URLs (in the order given).

    ``index(pid)`` is the position, in the list given, of the collector of ``pid``. The hash
    state of each key and its newline is made once; an id then costs one copy, one update
    and one 8-byte digest per collector. Digests compare as bytes: for equal lengths that is
    the order of their big-endian integers.
    """

    def __init__(self, urls: Sequence[str]) -> None:
        self.keys = [collector_key(u) for u in urls]
        if len(set(self.keys)) != len(self.keys):
            raise ValueError(f"the collector URLs must be different, got {list(urls)!r}")
        # smallest key first, so that the first of two equal weights is the smallest key
        self._order = sorted(range(len(self.keys)), key=lambda i: self.keys[i].encode())
        self._states = [
            hashlib.blake2b(f"{self.keys[i]}\n".encode(), digest_size=DIGEST_SIZE)
            for i in self._order
        ]

    def index(self, pid: str) -> int:
        """The position (in the URLs given) of the collector of the prediction id ``pid``."""
        data = str(pid).encode()
        best = b""
        chosen = 0
        for position, state in enumerate(self._states):
            h = state.copy()
            h.update(data)
            digest = h.digest()
            if digest > best:
                best, chosen = digest, position
        return self._order[chosen]

    def group(self, items: Sequence[_Item]) -> list[list[_Item]]:
        """For each collector (in the URLs given), the ``items`` whose first element is an id
        routed to it, in their order (labels ``(id, label, timestamp)``)."""
        out: list[list[_Item]] = [[] for _ in self.keys]
        index = self.index
        for item in items:
            out[index(item[0])].append(item)
        return out

    def partition(self, ids: Sequence[str]) -> list[list[int]]:
        """For each collector (in the URLs given), the positions in ``ids`` routed to it."""
        out: list[list[int]] = [[] for _ in self.keys]
        index = self.index
        for position, pid in enumerate(ids):
            out[index(pid)].append(position)
        return out
