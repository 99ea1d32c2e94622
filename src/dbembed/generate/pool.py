"""Per-seed pools of pre-rendered text, so that generating a row only samples.

Faker produces a few thousand values per second at best; a load-test generator has to
write 50k+ rows per second.  So Faker runs once per seed to fill templates (``vocab``)
into a few thousand strings per kind and language, and rows combine two pool entries,
which gives millions of distinct texts without calling Faker again.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from typing import Any

from dbembed.errors import UsageError
from dbembed.generate import vocab

# Kinds whose values are long free text: a fresh value joins two pool entries.
LONG_KINDS = frozenset({"chat", "note", "description", "comment", "review_text", "product_desc"})
POOL_SIZE = {"en": 1500, "ja": 700}
LANGS = ("en", "ja")


def _faker(locale: str, seed: int) -> Any:
    """Import Faker lazily: it is an optional dependency (``dbembed[generate]``)."""
    try:
        from faker import Faker
    except ImportError:
        raise UsageError(
            "dbembed generate needs Faker: pip install 'dbembed[generate]' (or: pip install faker)"
        ) from None
    fake = Faker(locale)
    fake.seed_instance(seed)
    return fake


@dataclass
class _Vocab:
    """Faker values for one language, drawn once per seed."""

    first: list[str]
    name: list[str]
    company: list[str]
    city: list[str]
    sentence: list[str]
    email: list[str]
    phone: list[str]
    items: list[str]
    colors: list[str]
    days: list[str]


def _draw_vocab(lang: str, seed: int) -> _Vocab:
    fake = _faker("ja_JP" if lang == "ja" else "en_US", seed)
    n = 300
    return _Vocab(
        first=[fake.first_name() for _ in range(n)],
        name=[fake.name() for _ in range(n)],
        company=[fake.company() for _ in range(n // 2)],
        city=[fake.city() for _ in range(n // 2)],
        sentence=[fake.sentence() for _ in range(POOL_SIZE[lang])],
        # Emails and phones are ASCII in every locale (Faker ja_JP included).
        email=[fake.email() for _ in range(n)],
        phone=[fake.phone_number() for _ in range(n)],
        items=vocab.ITEMS_JA if lang == "ja" else vocab.ITEMS_EN,
        colors=vocab.COLORS_JA if lang == "ja" else vocab.COLORS_EN,
        days=vocab.DAYS_JA if lang == "ja" else vocab.DAYS_EN,
    )


def _render(template: str, v: _Vocab, rng: random.Random) -> str:
    slots = {
        "first": rng.choice(v.first),
        "name": rng.choice(v.name),
        "company": rng.choice(v.company),
        "city": rng.choice(v.city),
        "item": rng.choice(v.items),
        "color": rng.choice(v.colors),
        "day": rng.choice(v.days),
        "time": f"{rng.randint(8, 18)}:{rng.choice(['00', '15', '30', '45'])}",
        "n": str(rng.randint(2, 99999)),
        "small": str(rng.randint(2, 60)),
    }
    # Each {sentence} slot gets its own sentence.
    parts = template.split("{sentence}")
    out = parts[0].format(**slots)
    for part in parts[1:]:
        out += rng.choice(v.sentence) + part.format(**slots)
    return out.strip()


@dataclass
class TextPool:
    """Pre-rendered strings per (kind, language) plus plain Faker values (names, emails...)."""

    seed: int
    texts: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    vocabs: dict[str, _Vocab] = field(default_factory=dict)

    def text(self, kind: str, lang: str, rng: random.Random) -> str:
        """A fresh value: long kinds join two entries so values rarely repeat by chance."""
        entries = self.texts[(kind, lang)]
        if kind in LONG_KINDS:
            sep = "" if lang == "ja" else " "
            return rng.choice(entries) + sep + rng.choice(entries)
        return rng.choice(entries)

    def value(self, attr: str, lang: str, rng: random.Random) -> str:
        return rng.choice(getattr(self.vocabs[lang], attr))


@functools.lru_cache(maxsize=4)
def get_pool(seed: int) -> TextPool:
    """The pool for ``seed`` (cached: tests and the CLI reuse it across files)."""
    pool = TextPool(seed=seed)
    for lang in LANGS:
        v = _draw_vocab(lang, seed)
        pool.vocabs[lang] = v
        templates = vocab.JA if lang == "ja" else vocab.EN
        rng = random.Random(f"pool:{seed}:{lang}")
        for kind, tpls in templates.items():
            size = POOL_SIZE[lang] if kind in LONG_KINDS else POOL_SIZE[lang] // 3
            pool.texts[(kind, lang)] = [_render(rng.choice(tpls), v, rng) for _ in range(size)]
    return pool
