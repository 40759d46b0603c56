"""How well the gateway decides: accuracy on labelled SMS, per group, with every miss.

    .venv/bin/python -m bench.quality [FILE.tsv ...] [--prefixes prefixes.yaml]

Each file is a TSV with a header naming at least ``text``, ``agency`` (code, or
NONE for the central queue / no agency) and ``kind``; optional ``category``
(name, NONE, or empty to skip the check) and ``group``. Without a ``group``
column, the group comes from how the text reads: a command, a prefixed report,
a typo'd prefix, or unprefixed (no prefix, an unknown one or the generic LAPOR).
A row counts as right when agency and kind (and category, when given) match.
Lines starting with ``#`` and holding no tab are comments.
Default files: ../shared/reference/sample_sms.tsv and tests/rules/cases.tsv.
Exit status 1 when anything is missed.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sms_gateway.registry import parse_registry  # noqa: E402
from sms_gateway.rules.classify import classify  # noqa: E402

DEFAULT_FILES = [ROOT.parent / "shared" / "reference" / "sample_sms.tsv", ROOT / "tests" / "rules" / "cases.tsv"]
GROUPS = ("prefixed", "typo'd prefix", "unprefixed", "commands")
NONE = {"", "none", "null", "-"}
# A fixed Tuesday that is a working day, so deadlines do not depend on today.
RECEIVED_AT = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def read_cases(path: Path) -> list[dict[str, str]]:
    """Rows of a labelled TSV; lines starting with # and holding no tab are comments.

    (A text may itself start with #: "#BEKASI aduan ..." is a row.)
    """
    with path.open(encoding="utf-8", newline="") as f:
        lines = [line for line in f if line.strip() and not (line.startswith("#") and "\t" not in line)]
    rows = list(csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))
    for row in rows:
        if not {"text", "agency", "kind"} <= row.keys():
            raise SystemExit(f"{path}: header must name text, agency and kind")
    return rows


def group_of(result: dict) -> str:
    """Which group a text belongs to, from how the parser read it."""
    if result["command"]:
        return "commands"
    match = result["prefix_match"]
    if match in ("exact", "glued"):
        return "prefixed"
    if match in ("typo", "abbreviation"):
        return "typo'd prefix"
    return "unprefixed"


def expected_value(raw: str | None) -> str | None:
    """A label as the classifier reports it (NONE -> None)."""
    return None if raw is None or raw.strip().lower() in NONE else raw.strip()


def evaluate(rows: list[dict[str, str]], registry) -> tuple[dict[str, list[int]], list[str]]:
    """Per-group [right, total] and a line for every miss."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    misses = []
    for row in rows:
        result = classify(row["text"], registry, RECEIVED_AT)
        group = (row.get("group") or "").strip() or group_of(result)
        want_agency, want_kind = expected_value(row["agency"]), row["kind"].strip()
        problems = []
        if result["agency"] != want_agency:
            problems.append(f"agency {result['agency'] or 'NONE'} (want {want_agency or 'NONE'})")
        if result["kind"] != want_kind:
            problems.append(f"kind {result['kind']} (want {want_kind})")
        if "category" in row and row["category"] is not None and row["category"].strip():
            want_category = expected_value(row["category"])
            if result["category"] != want_category:
                problems.append(f"category {result['category'] or 'NONE'} (want {want_category or 'NONE'})")
        counts[group][1] += 1
        if problems:
            matched = ", ".join(f"{m['keyword']}->{m['for']}" for m in result["matched"]) or "nothing"
            misses.append(f"[{group}] {row['text']!r}: {'; '.join(problems)}; matched {matched}; "
                          f"{result['reason'] or result['decided_by']}")
        else:
            counts[group][0] += 1
    return counts, misses


def main(argv: list[str] | None = None) -> int:
    """Print accuracy per group and every miss; 1 if anything was missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, default=DEFAULT_FILES)
    parser.add_argument("--prefixes", default=str(ROOT / "prefixes.yaml"))
    args = parser.parse_args(argv)
    registry = parse_registry(args.prefixes)
    failed = False
    for path in args.files:
        counts, misses = evaluate(read_cases(path), registry)
        right = sum(c[0] for c in counts.values())
        total = sum(c[1] for c in counts.values())
        print(f"{path}: {right}/{total} = {100 * right / max(total, 1):.1f}%")
        for group in [*GROUPS, *sorted(set(counts) - set(GROUPS))]:
            if group in counts:
                ok, n = counts[group]
                print(f"  {group:14} {ok:4}/{n:<4} {100 * ok / n:5.1f}%")
        for miss in misses:
            print(f"  MISS {miss}")
        failed = failed or bool(misses)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
