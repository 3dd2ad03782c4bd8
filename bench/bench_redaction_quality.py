"""Redaction quality on a labelled corpus: recall per secret kind, false positives per
class of hard negative.

The corpus (`bench/redaction_corpus.py`) is generated from a fixed seed, so every run
scores the same texts. Definitions:

- A secret is **caught** when no piece of it survives in the output
  (`bench.redaction_corpus.leaked`). Only letters and
  digits count (separators, numbering punctuation, padding and JSON punctuation are
  skipped, in the secret and in the output alike); a piece is any 8 consecutive letters
  or digits of the labelled secret (the whole of it when it has fewer), and it survives
  when the output, placeholders removed, holds it more often than the text around the
  secrets did. Which placeholder kind replaced a secret does not matter: only that
  nothing usable is left.
- A negative text is a **false positive** when anything in it was replaced (the output
  differs from the input).
- ``redaction_recall`` is caught secrets over all secrets; ``redaction_false_positive_rate``
  is false-positive texts over all negative texts; the ``_<kind>`` and ``_<class>``
  figures are the same per label. Targets: recall 1.0, false positives at most 0.001, for
  every class.
- ``redaction_collateral_rate``: addresses and hashes placed next to secrets (which agents
  need) that did not survive, over all such strings.

No infrastructure: this benchmark needs none.
"""

from __future__ import annotations

import os
import platform
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bench._common import table
from bench.redaction_corpus import NEGATIVE_CLASSES, SECRET_KINDS, corpus, leaked
from shared.redaction import redact

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from bench.redaction_corpus import Sample

SEED = int(os.environ.get("HELPSTREAM_BENCH_REDACTION_SEED", 15))
SIZE = int(os.environ.get("HELPSTREAM_BENCH_REDACTION_CORPUS", 12_000))
TARGET_RECALL = 1.0
TARGET_FALSE_POSITIVE_RATE = 0.001
EXAMPLES = 3


@dataclass
class Score:
    """Counts per label and the failures behind them."""

    secrets: Counter[str] = field(default_factory=Counter)
    caught: Counter[str] = field(default_factory=Counter)
    negatives: Counter[str] = field(default_factory=Counter)
    false_positives: Counter[str] = field(default_factory=Counter)
    kept: int = 0
    keep_total: int = 0
    errors: int = 0
    misses: dict[str, list[tuple[Sample, str]]] = field(default_factory=lambda: defaultdict(list))
    # where misses fall: "kind / wrapping detail" -> count
    miss_groups: Counter[str] = field(default_factory=Counter)


def _group(sample: Sample, kind: str) -> str:
    """A coarse name for a sample's wrapping, to see where misses gather."""
    parts = sample.wrapping.split(":")
    if kind == "bip39_mnemonic" and len(parts) >= 4:
        language, _, variant, layout = parts[:4]
        return f"{kind} {language} {variant} {layout}"
    return f"{kind} {sample.wrapping}".strip()


def score(samples: Sequence[Sample], redactor: Callable[[str], str]) -> Score:
    result = Score()
    for sample in samples:
        try:
            output = redactor(sample.text)
        except Exception as error:  # a crashing detector: every label of the text fails
            result.errors += 1
            output = f"<{type(error).__name__}: {error}>"
            failed = True
        else:
            failed = False
        if sample.negative_class is not None:
            result.negatives[sample.negative_class] += 1
            if failed or output != sample.text:
                result.false_positives[sample.negative_class] += 1
                result.misses[sample.negative_class].append((sample, output))
            continue
        labelled = [s for _, s in sample.secrets]
        for kind, secret in sample.secrets:
            result.secrets[kind] += 1
            if not failed and not leaked(secret, sample.text, output, labelled):
                result.caught[kind] += 1
                continue
            result.misses[kind].append((sample, output))
            result.miss_groups[_group(sample, kind)] += 1
        for keep in sample.keep:
            result.keep_total += 1
            result.kept += keep in output
    return result


def figures(result: Score, size: int) -> dict[str, float]:
    values: dict[str, float] = {"redaction_corpus_size": float(size)}
    for kind in SECRET_KINDS:
        if result.secrets[kind]:
            recall = result.caught[kind] / result.secrets[kind]
            values[f"redaction_recall_{kind}"] = round(recall, 4)
    for name in NEGATIVE_CLASSES:
        if result.negatives[name]:
            rate = result.false_positives[name] / result.negatives[name]
            values[f"redaction_false_positive_rate_{name}"] = round(rate, 4)
    total_secrets, total_negatives = result.secrets.total(), result.negatives.total()
    values["redaction_recall"] = round(result.caught.total() / max(total_secrets, 1), 4)
    values["redaction_false_positive_rate"] = round(
        result.false_positives.total() / max(total_negatives, 1), 4
    )
    values["redaction_collateral_rate"] = round(
        1 - result.kept / result.keep_total if result.keep_total else 0.0, 4
    )
    return values


def _short(text: str, limit: int = 240) -> str:
    flat = text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def report(result: Score) -> str:
    rows: list[tuple[object, ...]] = []
    for kind in SECRET_KINDS:
        n = result.secrets[kind]
        if n:
            recall = result.caught[kind] / n
            ok = "✔" if recall >= TARGET_RECALL else "✘"
            rows.append((kind, "secret", n, n - result.caught[kind], f"recall {recall:.4f} {ok}"))
    for name in NEGATIVE_CLASSES:
        n = result.negatives[name]
        if n:
            rate = result.false_positives[name] / n
            ok = "✔" if rate <= TARGET_FALSE_POSITIVE_RATE else "✘"
            rows.append((name, "negative", n, result.false_positives[name], f"FP {rate:.4f} {ok}"))
    lines = [table(rows, ("class", "label", "texts/secrets", "failures", "figure"))]
    if result.errors:
        lines.append(f"\nredact() raised on {result.errors} texts (counted as failures)")
    if result.miss_groups:
        lines.append("\nMisses by wrapping (most first):")
        lines += [f"  {n:5d}  {g}" for g, n in result.miss_groups.most_common(40)]
    for label, failures in result.misses.items():
        lines.append(f"\nFirst {min(EXAMPLES, len(failures))} of {len(failures)} failures: {label}")
        for sample, output in failures[:EXAMPLES]:
            lines.append(f"  [{sample.wrapping or sample.language}]")
            lines.append(f"    in : {_short(sample.text)}")
            lines.append(f"    out: {_short(output)}")
    return "\n".join(lines)


def run() -> dict[str, float]:
    started = datetime.now(UTC)
    samples = corpus(SEED, SIZE)
    clock = time.perf_counter()
    result = score(samples, lambda text: redact(text).text)
    seconds = time.perf_counter() - clock
    ended = datetime.now(UTC)
    values = figures(result, len(samples))
    values["redaction_corpus_seconds"] = round(seconds, 2)
    print(
        f"  {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{started:%Y-%m-%d %H:%M:%S}–{ended:%H:%M:%S} UTC; seed {SEED}, {len(samples)} texts, "
        f"{result.secrets.total()} secrets, {result.negatives.total()} negatives; "
        f"redact() over the corpus {seconds:.2f} s"
    )
    print(report(result), flush=True)
    return values
