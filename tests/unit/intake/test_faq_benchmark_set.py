"""The retrieval benchmark's labelled questions stay usable: enough of them, in both
languages, every label an article that ships (a renamed article fails here, not in a run)."""

from __future__ import annotations

from collections import Counter

from bench.bench_faq_retrieval import score
from bench.faq_questions import QUESTIONS
from services.intake.faq import packaged_index
from shared.events import Category


def test_at_least_a_hundred_questions_in_both_languages_labelled_with_shipped_articles() -> None:
    index = packaged_index()
    languages = Counter(q.language for q in QUESTIONS)
    assert len(QUESTIONS) >= 100
    assert min(languages["zh-CN"], languages["en"]) >= 50
    assert len({q.text for q in QUESTIONS}) == len(QUESTIONS)
    for question in QUESTIONS:
        for article_id in question.answer_ids():
            article = index.get(article_id)
            assert article is not None, (question.text, article_id)
            assert article.language == question.language
        assert question.category is None or question.category in set(Category)


def test_recall_counts_right_articles_in_the_top_three_and_mrr_the_first_rank() -> None:
    question = next(q for q in QUESTIONS if len(q.answers) == 2 and q.language == "en")
    first, second = sorted(question.answer_ids())
    assert score(question, ["x", first, "y", second]) == (0.5, 1.0, 0.5)
    assert score(question, ["x", "y", "z", first]) == (0.0, 0.0, 0.25)
    assert score(question, []) == (0.0, 0.0, 0.0)
