"""Parser cost of one long unbroken word against ordinary text of the same size.

    .venv/bin/python bench/long_token.py [--rounds 5] [--sizes 10000,30000,65536]

For each size, ``parse`` + ``decide`` (what the worker does per SMS besides
the database) on three texts: ordinary words (the baseline), one unbroken
word of letters, and one of digits. Rounds interleave the subjects; medians
are reported with the ratio to the baseline at the same size. Before the
long-token guard (issue 13) one 64 KB word cost about 1.2 s; a linear parser
keeps the ratio near or below 1 at every size.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sms_gateway.decision import decide  # noqa: E402
from sms_gateway.parsing import parse  # noqa: E402
from sms_gateway.registry import parse_registry  # noqa: E402

AT = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def texts(size: int) -> dict[str, str]:
    """The three subjects at ``size`` characters."""
    words = ("bus masih angkut pemudik di terminal " * (size // 37 + 1))[:size]
    return {"words (baseline)": words, "one word": "a" * size, "digits": "7" * size}


def main() -> None:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", default="10000,30000,65536")
    args = parser.parse_args()
    registry = parse_registry(ROOT / "prefixes.yaml")
    decide(parse("KEMENHUB ADUAN bus", registry), registry, AT)  # warm the indexes
    sizes = [int(s) for s in args.sizes.split(",")]
    timings: dict[tuple[int, str], list[float]] = {}
    for _ in range(args.rounds):
        for size in sizes:
            for name, text in texts(size).items():
                start = time.perf_counter()
                decide(parse(text, registry), registry, AT)
                timings.setdefault((size, name), []).append(time.perf_counter() - start)
    print(f"{platform.node()} · Python {platform.python_version()} · {args.rounds} rounds, medians\n")
    print("| size | text | parse + decide | ratio to words |")
    print("| ---: | --- | ---: | ---: |")
    for size in sizes:
        base = statistics.median(timings[(size, "words (baseline)")])
        for name in texts(size):
            median = statistics.median(timings[(size, name)])
            print(f"| {size:,} | {name} | {median * 1000:.1f} ms | {median / base:.2f} |")


if __name__ == "__main__":
    main()
