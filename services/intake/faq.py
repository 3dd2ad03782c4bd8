"""Self-service answers: help articles loaded at start, indexed with BM25, ranked per ticket.

Articles are Markdown files with YAML front matter in `services/intake/articles/` (or the
folder `HELPSTREAM_HELP_ARTICLES` names). A bad article stops the start with a
`ConfigError` naming the file and what is wrong, never a request later.

Ranking (`ArticleIndex.suggest`): the ticket's subject and description are tokenized
(jieba for Chinese, words for everything else), scored with BM25 (Okapi) against each
article's title, keywords, assets, networks and text, normalised to the best match, then
boosted when the article names the ticket's category, network or asset. Articles in the
ticket's language come first; the other language only fills the places left.

Pure: no I/O after `load_index`. jieba's dictionary is built once per process, with
no cache file written anywhere and no output at import.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from markdown_it import MarkdownIt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from rank_bm25 import BM25Okapi

from shared.errors import ConfigError
from shared.events import ArticleSuggestion, Category

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import jieba

PACKAGED = Path(__file__).parent / "articles"
ARTICLE_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_ID = 100
MAX_QUERY_CHARS = 2000  # enough words to rank on; bounds the work a long ticket costs
SUGGESTED = 3
Language = Literal["zh-CN", "en"]
LANGUAGES: tuple[Language, ...] = ("zh-CN", "en")

# What a match on the ticket's own facts adds to a text score normalised to 0..1.
BOOST_CATEGORY = 0.6
BOOST_NETWORK = 0.5
BOOST_ASSET = 0.2

# The names people and systems use for one network, as articles name it.
NETWORK_ALIASES: dict[str, str] = {
    "TRON": "TRC20",
    "TRX": "TRC20",
    "TRC-20": "TRC20",
    "ERC-20": "ERC20",
    "ETH": "ERC20",
    "ETHEREUM": "ERC20",
    "BSC": "BEP20",
    "BEP-20": "BEP20",
    "BNB SMART CHAIN": "BEP20",
    "BITCOIN": "BTC",
    "SOLANA": "SOL",
    "SPL": "SOL",
}

_STOPWORDS = frozenset(
    """a an and are as at be been but by can do does for from had has have i if in is it
    its my me no not of on or our so that the their them then there these this to was we
    were what when where which who why will with you your am been did get got has please
    hello hi thanks thank help still yet already
    的 了 我 是 在 有 和 就 不 都 也 很 到 说 要 去 你 会 着 没有 看 好 自己 这 那 吗 呢 吧 啊
    请 您 我的 已经 还 还是 一个 什么 怎么 为什么 可以 现在 问题 帮 帮忙 谢谢 你好 一下""".split()
)
_WORD = re.compile(r"\w", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u9fff]")
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n(.*)\Z", re.DOTALL)
_MARKUP = re.compile(r"[#>*_`\[\]()!|-]+")


class ArticleMeta(BaseModel):
    """An article's front matter; anything else in it is a mistake worth stopping for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=3, max_length=MAX_ID, pattern=ARTICLE_ID.pattern)
    title: str = Field(min_length=3, max_length=200)
    language: Language
    categories: list[Category] = Field(min_length=1)
    assets: list[str] = Field(default_factory=list)
    networks: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)

    @field_validator("assets", "networks")
    @classmethod
    def _upper(cls, values: list[str]) -> list[str]:
        return [network_name(v) for v in values]


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    language: Language
    categories: frozenset[Category]
    assets: frozenset[str]
    networks: frozenset[str]
    keywords: tuple[str, ...]
    body: str  # Markdown, as written
    html: str  # the body rendered, raw HTML in the Markdown escaped

    def suggestion(self) -> ArticleSuggestion:
        return ArticleSuggestion(id=self.id, title=self.title, language=self.language)


@dataclass(frozen=True)
class Ranked:
    article: Article
    score: float


def network_name(value: str) -> str:
    """`tron`, `TRC-20` and `TRC20` are one network; assets are upper-cased."""
    upper = value.strip().upper()
    return NETWORK_ALIASES.get(upper, upper)


def language_of(locale: str | None) -> Language:
    """A ticket's language: its requester's locale (any `zh*` is zh-CN, else en)."""
    return "zh-CN" if (locale or "").lower().replace("_", "-").startswith("zh") else "en"


def valid_article_id(value: str) -> bool:
    """Ids name articles in an index, never files: letters, digits and single hyphens."""
    return len(value) <= MAX_ID and ARTICLE_ID.fullmatch(value) is not None


@functools.cache
def _segmenter() -> jieba.Tokenizer:
    """jieba's tokenizer, its dictionary built once per process in memory. jieba's own
    initialisation writes a cache file to the temp folder and logs to stderr; building the
    prefix dictionary directly does neither (about 1 s, once, at start)."""
    import jieba  # 0.4 s to import: only where Chinese is tokenized

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    with tokenizer.lock:
        tokenizer.FREQ, tokenizer.total = tokenizer.gen_pfdict(tokenizer.get_dict_file())
        tokenizer.initialized = True
    return tokenizer


def _stem(word: str) -> str:
    """Light English folding so `withdrawals`, `withdrawing` and `withdrawal` meet."""
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)] + keep
    return word


def tokens(text: str) -> list[str]:
    """Search terms of a text in either language (mixed text too: `USDT提现卡住`)."""
    text = text.lower()
    if _CJK.search(text):
        words: Iterable[str] = _segmenter().cut_for_search(text, HMM=True)
    else:
        words = re.findall(r"[\w-]+", text)
    out = []
    for word in words:
        word = word.strip("-_")
        if not word or word in _STOPWORDS or not _WORD.search(word):
            continue
        if word.isascii():
            word = _stem(word)
        out.append(word)
    return out


def _indexed_text(meta: ArticleMeta, body: str) -> list[str]:
    """Title and keywords count twice: they say what the article is about."""
    head = " ".join([meta.title, *meta.keywords])
    facts = " ".join([*meta.assets, *meta.networks])
    return tokens(f"{head} {head} {facts} {_MARKUP.sub(' ', body)}")


_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


def render_markdown(body: str) -> str:
    """HTML of an article body. Raw HTML in the Markdown is shown as text, and links
    with `javascript:`, `vbscript:`, `file:` or `data:` targets are not made links."""
    return str(_MARKDOWN.render(body))


def parse_article(path: Path) -> tuple[Article, list[str]]:
    """One article file and its search terms; `ConfigError` naming the file otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"help article {path}: cannot be read ({exc})") from exc
    match = _FRONT_MATTER.match(text)
    if match is None:
        raise ConfigError(f"help article {path}: no front matter (--- YAML --- at the top)")
    try:
        raw = yaml.safe_load(match.group(1))
        meta = ArticleMeta.model_validate(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"help article {path}: front matter is not YAML ({exc})") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'front matter'}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"help article {path}: {problems}") from exc
    if meta.id != path.stem:
        raise ConfigError(f"help article {path}: id {meta.id!r} must be the file name")
    body = match.group(2).strip()
    if len(body) < 40:
        raise ConfigError(f"help article {path}: the text is missing or too short")
    article = Article(
        id=meta.id,
        title=meta.title,
        language=meta.language,
        categories=frozenset(meta.categories),
        assets=frozenset(meta.assets),
        networks=frozenset(meta.networks),
        keywords=tuple(meta.keywords),
        body=body,
        html=render_markdown(body),
    )
    return article, _indexed_text(meta, body)


class ArticleIndex:
    """Every article by id, and one BM25 index per language."""

    def __init__(self, articles: Sequence[tuple[Article, list[str]]]) -> None:
        self.articles: dict[str, Article] = {}
        for article, _ in articles:
            if article.id in self.articles:
                raise ConfigError(f"help articles: id {article.id!r} is used twice")
            self.articles[article.id] = article
        self._by_language: dict[str, tuple[list[Article], BM25Okapi | None]] = {}
        for language in LANGUAGES:
            docs = [(a, t) for a, t in articles if a.language == language]
            index = BM25Okapi([t for _, t in docs]) if docs else None
            self._by_language[language] = ([a for a, _ in docs], index)

    def get(self, article_id: str) -> Article | None:
        if not valid_article_id(article_id):
            return None
        return self.articles.get(article_id)

    def rank(
        self,
        text: str,
        *,
        language: Language,
        category: Category | None = None,
        asset: str | None = None,
        network: str | None = None,
        limit: int = SUGGESTED,
    ) -> list[Ranked]:
        """The best `limit` articles for a ticket, its language first (see the module)."""
        query = tokens(text[:MAX_QUERY_CHARS])
        wanted_asset = network_name(asset) if asset else None
        wanted_network = network_name(network) if network else None
        ranked: list[Ranked] = []
        for lang in (language, *(other for other in LANGUAGES if other != language)):
            articles, index = self._by_language[lang]
            if index is None:
                continue
            scores = [float(s) for s in index.get_scores(query)] if query else []
            best = max(scores, default=0.0)
            found = []
            for position, article in enumerate(articles):
                score = scores[position] / best if best > 0 and scores[position] > 0 else 0.0
                if category is not None and category in article.categories:
                    score += BOOST_CATEGORY
                if wanted_network is not None and wanted_network in article.networks:
                    score += BOOST_NETWORK
                if wanted_asset is not None and wanted_asset in article.assets:
                    score += BOOST_ASSET
                if score > 0:
                    found.append(Ranked(article, round(score, 6)))
            found.sort(key=lambda r: (-r.score, r.article.id))
            ranked.extend(found[: limit - len(ranked)])
            if len(ranked) >= limit:
                break
        return ranked

    def suggest(
        self,
        *,
        subject: str,
        description: str,
        locale: str | None,
        category: Category | None = None,
        asset: str | None = None,
        network: str | None = None,
    ) -> list[ArticleSuggestion]:
        """The three articles shown with a ticket (acknowledgement and status page)."""
        ranked = self.rank(
            f"{subject}\n{description}",
            language=language_of(locale),
            category=category,
            asset=asset,
            network=network,
        )
        return [r.article.suggestion() for r in ranked]


def load_index(folder: Path | None = None) -> ArticleIndex:
    """Every `*.md` in the folder (the packaged articles by default), indexed."""
    folder = folder or PACKAGED
    if not folder.is_dir():
        raise ConfigError(f"help articles: {folder} is not a folder")
    paths = sorted(folder.glob("*.md"))
    if not paths:
        raise ConfigError(f"help articles: no *.md files in {folder}")
    return ArticleIndex([parse_article(path) for path in paths])


@functools.cache
def packaged_index() -> ArticleIndex:
    """The packaged articles, loaded once per process (tests, the local run)."""
    return load_index(PACKAGED)
