"""How well the gateway decides: accuracy on labelled SMS, agency and kind per group, with every miss.

    .venv/bin/python -m bench.quality [FILE.tsv ...] [--prefixes prefixes.yaml] [--no-misses]

Each file is a TSV with a header naming at least ``text``, ``agency`` (code, or
NONE for the central queue / no agency) and ``kind``; optional ``unit`` (the
city unit the report should be disposed to), ``category`` (name, NONE, or
empty to skip the check) and ``group``. Without a ``group`` column, the group
comes from how the text reads: a command, a prefixed report, a typo'd prefix,
or unprefixed (no prefix, an unknown one or the generic LAPOR). A row counts
as right when agency (and unit), kind and category (when given) match; agency
and kind are also counted apart. Lines starting with ``#`` and holding no tab
are comments. Default files: tests/data/sample_sms.tsv and the sets
shipped in sms_gateway/data/cases/ (the team's cases, the issue-15 evaluation
set's development and test halves). Exit status 1 when anything is missed.
The code is sms_gateway/rules/evaluation.py (also behind `sms-gateway rules eval`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sms_gateway.registry import parse_registry  # noqa: E402
from sms_gateway.rules.evaluation import SHIPPED_SETS, evaluate, read_cases, render  # noqa: E402

CASES_DIR = ROOT / "sms_gateway" / "data" / "cases"
DEFAULT_FILES = [ROOT / "tests" / "data" / "sample_sms.tsv", *(CASES_DIR / n for n in SHIPPED_SETS)]
GROUPS = ("prefixed", "typo'd prefix", "unprefixed", "commands")


def main(argv: list[str] | None = None) -> int:
    """Print accuracy per group and every miss; 1 if anything was missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, default=DEFAULT_FILES)
    parser.add_argument("--prefixes", default=str(ROOT / "prefixes.yaml"))
    parser.add_argument("--no-misses", action="store_true", help="print the tables only")
    args = parser.parse_args(argv)
    registry = parse_registry(args.prefixes)
    failed = False
    for path in args.files:
        if not path.exists():
            print(f"{path}: not present, skipped")
            continue
        result = evaluate(registry, read_cases(path))
        for line in render(result, str(path), GROUPS, misses=not args.no_misses):
            print(line)
        failed = failed or bool(result.misses)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
