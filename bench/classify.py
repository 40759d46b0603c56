"""Rules engine throughput: messages per second at 10, 1,000 and 10,000 added rules.

    .venv/bin/python bench/classify.py [--rounds 7] [--messages 3000] [--cpu 0]

The shipped prefixes.yaml plus N synthetic rules spread over its agencies (no
new agencies, so the parser's work stays the same). Synthetic keywords are
made-up words of Indonesian-like syllables, one in five phrases starting with a
real word of the message mix, so the automaton walks partial matches as it
would with real rules. The message mix is the shared sample and the rules test
cases (realistic SMS), one in ten messages carrying a keyword of the first
synthetic rules (present at every size), so matches on synthetic rules are
scored at every size alike.

Three subjects, each timed per size, sizes interleaved and shuffled in every
round (the machine is shared: medians of the rounds are reported):
- engine: ``Engine.evaluate`` on the text (normalise, stem, match, score): the
  rules engine, the subject of the targets;
- decision: ``parse`` + ``decide`` — what the worker does per SMS besides the
  database (prefix parsing, rules, category, deadlines, evidence);
- parse: ``parse`` alone, the part of the decision that is not the rules
  engine's (the rest is the deadline arithmetic and the evidence).
The ratio is the rate at 10,000 rules over the rate at 10 rules.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.quality import DEFAULT_FILES  # noqa: E402
from sms_gateway.decision import decide  # noqa: E402
from sms_gateway.parsing import parse  # noqa: E402
from sms_gateway.registry import parse_registry  # noqa: E402
from sms_gateway.rules import engine_for  # noqa: E402
from sms_gateway.rules.evaluation import read_cases  # noqa: E402

SIZES = (10, 1_000, 10_000)
SYLLABLES = [c + v for c in "bcdghjklmnprstw" for v in "aiueo"] + ["ng", "ny", "an", "ar", "ik", "ul"]
RECEIVED_AT = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def pseudo_word(rng: random.Random) -> str:
    """A made-up word (``kalumpa``) that no message contains by accident."""
    return "x" + "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))


def synthetic_rules(n: int, agencies: list[str], real_words: list[str], seed: int = 1708) -> dict[str, list]:
    """``n`` rules (1 to 4 keywords each) spread round-robin over ``agencies``."""
    rng = random.Random(seed)
    out: dict[str, list] = {code: [] for code in agencies}
    used: set[str] = set()
    for i in range(n):
        keywords = []
        while len(keywords) < rng.randint(1, 4):
            words = [pseudo_word(rng) for _ in range(rng.randint(1, 3))]
            if rng.random() < 0.2:
                words[0] = rng.choice(real_words)
                if len(words) == 1:
                    words.append(pseudo_word(rng))
            phrase = " ".join(words)
            if phrase not in used:
                used.add(phrase)
                keywords.append(phrase)
        out[agencies[i % len(agencies)]].append(
            {"name": f"synthetic {i}", "weight": rng.choice([1, 2, 3]), "priority": i + 1000, "keywords": keywords})
    return out


def registry_with(n: int, base: dict, real_words: list[str], tmp: Path):
    """The shipped registry plus ``n`` synthetic rules, written out and loaded as admins would."""
    data = yaml.safe_load(yaml.safe_dump(base))
    agencies = list(data["agencies"])
    for code, rules in synthetic_rules(n, agencies, real_words).items():
        data["agencies"][code].setdefault("rules", []).extend(rules)
    path = tmp / f"prefixes-{n}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    started = time.perf_counter()
    registry = parse_registry(path)
    engine = engine_for(registry)
    return registry, engine, time.perf_counter() - started


def main() -> None:
    """Print a table of rates per size and the 10k/10 ratio."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--messages", type=int, default=3000, help="messages per timed pass")
    ap.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    ap.add_argument("--prefixes", default=str(ROOT / "prefixes.yaml"))
    args = ap.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})

    texts = [row.text for path in DEFAULT_FILES if path.exists() for row in read_cases(path)]
    real_words = sorted({w.lower() for t in texts for w in t.split() if w.isalpha() and len(w) > 3})
    base = yaml.safe_load(Path(args.prefixes).read_text(encoding="utf-8"))
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-classify-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)

    setups = {}
    for n in SIZES:
        registry, engine, build = registry_with(n, base, real_words, tmp)
        setups[n] = (registry, engine, build)
        print(f"{n:>6} synthetic rules: {engine.rule_count} rules in all, {engine.matcher.size} phrases, "
              f"built in {build:.2f}s", flush=True)

    # The same mix at every size: one message in ten carries a keyword of the first synthetic rules.
    rng = random.Random(42)
    first_keywords = [k for rules in synthetic_rules(SIZES[0], list(base["agencies"]), real_words).values()
                      for r in rules for k in r["keywords"]]
    mix = []
    for i in range(args.messages):
        text = texts[i % len(texts)]
        if i % 10 == 0:
            text = f"{text} {rng.choice(first_keywords)}"
        mix.append(text)

    def run_engine(engine) -> float:
        started = time.perf_counter()
        for text in mix:
            engine.evaluate(text)
        return len(mix) / (time.perf_counter() - started)

    def run_decision(registry) -> float:
        started = time.perf_counter()
        for text in mix:
            parsed = parse(text, registry)
            if parsed.command is None:
                decide(parsed, registry, RECEIVED_AT)
        return len(mix) / (time.perf_counter() - started)

    def run_parse(registry) -> float:
        started = time.perf_counter()
        for text in mix:
            parse(text, registry)
        return len(mix) / (time.perf_counter() - started)

    for n in SIZES:  # warm the caches (stems, deadlines) once per size
        run_engine(setups[n][1])
        run_decision(setups[n][0])
    rates: dict[tuple[str, int], list[float]] = {}
    order = list(SIZES)
    for _ in range(args.rounds):
        rng.shuffle(order)
        for n in order:
            registry, engine, _build = setups[n]
            rates.setdefault(("engine", n), []).append(run_engine(engine))
            rates.setdefault(("decision", n), []).append(run_decision(registry))
            rates.setdefault(("parse", n), []).append(run_parse(registry))

    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{args.rounds} rounds x {len(mix)} messages, median msg/s (min-max)")
    subjects = ("engine", "decision", "parse")
    print(f"{'rules added':>12} {'engine msg/s':>24} {'parse+decide msg/s':>24} {'parse msg/s':>24}")
    for n in SIZES:
        cells = []
        for subject in subjects:
            values = rates[(subject, n)]
            cells.append(f"{statistics.median(values):>9,.0f} ({min(values):,.0f}-{max(values):,.0f})")
        print(f"{n:>12,} " + " ".join(f"{c:>24}" for c in cells))
    for subject in subjects:
        ratio = statistics.median(rates[(subject, SIZES[-1])]) / statistics.median(rates[(subject, SIZES[0])])
        print(f"ratio {SIZES[-1]:,}/{SIZES[0]} rules ({subject}): {ratio:.2f}")


if __name__ == "__main__":
    main()
