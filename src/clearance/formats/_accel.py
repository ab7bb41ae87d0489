"""The optional C accelerator of canonical JSON: orjson when it is importable, else nothing.

orjson is an *optional* accelerator of this package, not a dependency. ``formats`` must stay
installable with the standard library, ``cryptography`` and ``rfc8785`` alone: the independent
verifier depends on it, and an auditor may install nothing else (DESIGN.md section 1). The gate
always has orjson (a core dependency of clearance), so its hot path is fast; a verifier installed
alone runs the pure-Python paths and produces and accepts exactly the same bytes.

Nothing here decides what is canonical. ``canonical.canonical_bytes`` hands orjson only values it
writes exactly as RFC 8785 does, and ``strict.loads_canonical`` re-encodes whatever a parser
returned and compares it with the input byte for byte, so a parser that differed on some input
could make a check fail, never pass. Both paths are tested against the reference ``rfc8785``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

#: ``orjson.dumps`` with sorted member names and integers beyond +/-(2**53 - 1) refused; None
#: without orjson.
sorted_dumps: Callable[[Any], bytes] | None
#: Raw JSON text embedded as is (``orjson.Fragment``); only used when ``sorted_dumps`` is set.
fragment: Callable[[str], Any]
#: The fastest JSON parser available (UTF-8 bytes in, plain Python values out).
loads: Callable[[bytes], Any]
#: ``"orjson <version>"`` or ``"none"``, for benchmark and verifier reports.
NAME: str

try:
    import orjson
except ImportError:  # a verifier installed without the gate's dependencies
    sorted_dumps = None
    fragment = str
    loads = json.loads
    NAME = "none"
else:
    sorted_dumps = functools.partial(
        orjson.dumps, option=orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
    )
    fragment = orjson.Fragment
    loads = orjson.loads
    NAME = f"orjson {orjson.__version__}"
