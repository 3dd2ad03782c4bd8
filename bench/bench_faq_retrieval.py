"""Help-article retrieval quality: do the three suggestions of a ticket hold its answer?

Over the labelled questions of `bench/faq_questions.py` (zh-CN and en), each ranked as
intake ranks a new ticket (`ArticleIndex.rank`: BM25 over the packaged articles, boosted
by the ticket's category, network and asset, the requester's language first):

- ``faq_recall_at_3``: the share of a question's right articles among its top three,
  averaged over questions (target ≥ 0.85); ``faq_hit_at_3``: questions with at least one
  right article in the top three.
- ``faq_mrr``: mean reciprocal rank of the first right article in the top ten (0 when none).
- The same for two baselines measured in the same run: ``faq_bm25_only_*`` (the same
  index and language order, no category, asset or network boost) and ``faq_random_*``
  (the articles of the question's language in a seeded random order).
- ``faq_questions``, and ``faq_recall_at_3_zh`` / ``_en`` per language.

No infrastructure: the index is built in memory from the packaged articles.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.faq_questions import QUESTIONS, Question
from services.intake.faq import ArticleIndex, packaged_index
from shared.events import Category

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

TARGET_RECALL_AT_3 = 0.85
DEPTH = 10  # ranks looked at for MRR
SEED = 19


@dataclass(frozen=True)
class Scores:
    recall_at_3: float
    hit_at_3: float
    mrr: float


def score(question: Question, ranked: Sequence[str]) -> tuple[float, float, float]:
    right = question.answer_ids()
    top3 = set(ranked[:3])
    recall = len(right & top3) / len(right)
    first = next((i for i, a in enumerate(ranked[:DEPTH], 1) if a in right), None)
    return recall, float(bool(right & top3)), 1 / first if first else 0.0


def evaluate(
    questions: Sequence[Question], rank: Callable[[Question], list[str]]
) -> tuple[Scores, list[tuple[Question, list[str]]]]:
    """The averages, and the questions whose top three missed an answer."""
    totals = [0.0, 0.0, 0.0]
    misses = []
    for question in questions:
        ranked = rank(question)
        for i, value in enumerate(score(question, ranked)):
            totals[i] += value
        if not question.answer_ids() & set(ranked[:3]):
            misses.append((question, ranked[:3]))
    n = len(questions)
    return Scores(*(round(t / n, 4) for t in totals)), misses


def intake_ranking(index: ArticleIndex) -> Callable[[Question], list[str]]:
    def rank(q: Question) -> list[str]:
        found = index.rank(
            q.text,
            language=q.language,
            category=Category(q.category) if q.category else None,
            asset=q.asset,
            network=q.network,
            limit=DEPTH,
        )
        return [r.article.id for r in found]

    return rank


def bm25_only(index: ArticleIndex) -> Callable[[Question], list[str]]:
    def rank(q: Question) -> list[str]:
        return [r.article.id for r in index.rank(q.text, language=q.language, limit=DEPTH)]

    return rank


def random_order(index: ArticleIndex) -> Callable[[Question], list[str]]:
    generator = random.Random(SEED)

    def rank(q: Question) -> list[str]:
        ids = sorted(a.id for a in index.articles.values() if a.language == q.language)
        generator.shuffle(ids)
        return ids

    return rank


def run() -> dict[str, float]:
    started = time.perf_counter()
    index = packaged_index()
    built = time.perf_counter() - started
    results: dict[str, float] = {"faq_questions": len(QUESTIONS)}
    rankers = {
        "faq": intake_ranking(index),
        "faq_bm25_only": bm25_only(index),
        "faq_random": random_order(index),
    }
    for prefix, rank in rankers.items():
        scores, misses = evaluate(QUESTIONS, rank)
        results[f"{prefix}_recall_at_3"] = scores.recall_at_3
        results[f"{prefix}_hit_at_3"] = scores.hit_at_3
        results[f"{prefix}_mrr"] = scores.mrr
        if prefix == "faq":
            for language, suffix in (("zh-CN", "zh"), ("en", "en")):
                subset = [q for q in QUESTIONS if q.language == language]
                results[f"faq_recall_at_3_{suffix}"] = evaluate(subset, rank)[0].recall_at_3
            for question, top3 in misses:
                print(f"  miss: {question.text!r} → {', '.join(top3)}")
    started = time.perf_counter()
    rank = rankers["faq"]
    for question in QUESTIONS:
        rank(question)
    results["faq_rank_ms_per_question"] = round(
        (time.perf_counter() - started) * 1000 / len(QUESTIONS), 3
    )
    results["faq_index_build_s"] = round(built, 3)
    status = "meets" if results["faq_recall_at_3"] >= TARGET_RECALL_AT_3 else "BELOW"
    print(f"  recall@3 {results['faq_recall_at_3']} {status} the {TARGET_RECALL_AT_3} target")
    return results
