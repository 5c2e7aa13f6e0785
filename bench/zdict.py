"""Makes the preset dictionary of the customer-state format 3 (``stream/data/state-v3.zdict``).

Usage: .venv/bin/python bench/zdict.py [--out stream/data/state-v3.zdict] [--size 2048]

Deflate compresses a small value poorly on its own: a 1 KB state has few repeats.
A preset dictionary gives it the repeats up front. This one is the *skeleton* of
simulated states (format 2 JSON): field names, segment, window and channel names,
the shape of timestamps and consent entries, with every identifier, e-mail,
phone and digest blanked, so it carries the format's structure and none of the
simulated shop's vocabulary (a real shop's product ids would not match anyway).

The file is part of format 3: states written with it can only be read with it,
so it is made once and committed; a new dictionary means a new format number.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import orjson
from memory import build_states

from stream.state_codec import state_to_plain

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "stream" / "data" / "state-v3.zdict"
IDENTIFIERS = (
    (re.compile(r'"[^"]*@[^"]*"'), '"@"'),  # e-mail addresses
    (re.compile(r'"\+?[0-9]{6,}"'), '""'),  # phone numbers
    (re.compile(r'"[A-Za-z]*-?[0-9][0-9A-Za-z:_-]*"'), '""'),  # ids with digits
    (re.compile(r'"[0-9a-f]{16}"'), '""'),  # event-id digests
)


def skeleton(text: str) -> str:
    for pattern, blank in IDENTIFIERS:
        text = pattern.sub(blank, text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--size", type=int, default=2048, help="dictionary bytes (default 2048)")
    args = parser.parse_args()
    states = list(build_states(400, 20).values())[:40]  # deterministic: a fixed seed
    text = "".join(skeleton(orjson.dumps(state_to_plain(s)).decode()) for s in states)  # type: ignore[arg-type]
    # deflate prefers matches close to the data: the most common strings go last
    args.out.write_bytes(text.encode()[-args.size :])
    print(f"wrote {args.size} bytes to {args.out}")


if __name__ == "__main__":
    main()
