"""Row documents and token-aware chunking (fake tokenizers for exact checks, real MiniLM for CJK)."""

from __future__ import annotations

import re
import unicodedata

import pytest

from dbembed.read import Column, Row, TableInfo
from dbembed.text.chunk import Chunker
from dbembed.text.document import row_document


def table(text_columns: tuple[str, ...], template: str | None = None, name: str = "Album") -> TableInfo:
    cols = tuple(Column(c, "TEXT", "TEXT", 0) for c in text_columns)
    return TableInfo(name, "table", cols, text_columns, (), False, template)


# --- documents --------------------------------------------------------------------------------
def test_row_document_layout() -> None:
    t = table(("Title", "Artist", "Notes"))
    row = Row("1", {"Title": "Let There Be Rock", "Artist": "AC/DC", "Notes": None})
    assert row_document(t, row) == "Album | Title: Let There Be Rock | Artist: AC/DC"
    assert row_document(t, Row("2", {"Title": "  ", "Artist": None, "Notes": ""})) is None


def test_row_document_whitespace_and_japanese() -> None:
    t = table(("Body",), name="メモ")
    text = "東京タワー\u3000は  高い。\t\tＡＢＣ１２３\r\n\r\n\r\n\r\n次の行   "
    # NFKC (the hygiene boundary): full-width ＡＢＣ１２３ and the ideographic space fold to ASCII forms,
    # as a query typed either way is folded the same way.
    assert row_document(t, Row("1", {"Body": text})) == "メモ | Body: 東京タワー は 高い。 ABC123\n\n次の行"


def test_row_document_template() -> None:
    t = table(("Title",), template="{Title} by {Artist} ({Year:d}) {Missing}{price:.2f}")
    doc = row_document(t, Row("1", {"Title": "Rock", "Artist": "AC/DC", "Year": None, "Price": 9.5}))
    assert doc == "Rock by AC/DC () 9.50"  # no "Album |" prefix; missing/NULL -> ""; names case-insensitive
    assert row_document(t, Row("2", {"Title": None, "Artist": None})) is None
    assert row_document(table((), template="{a} {b"), Row("3", {"a": 1})) == "{a} {b"  # broken braces


@pytest.mark.parametrize(
    ("fmt", "want"),
    [
        ("table-columns", "Album | Title: Let There Be Rock | Artist: AC/DC"),
        ("columns", "Title: Let There Be Rock | Artist: AC/DC"),
        ("values", "Let There Be Rock | AC/DC"),
    ],
)
def test_row_document_formats(fmt: str, want: str) -> None:
    t = table(("Title", "Artist", "Notes"))
    row = Row("1", {"Title": " Let There Be Rock ", "Artist": "AC/DC", "Notes": "\u200b"})  # blank: left out
    assert row_document(t, row, fmt) == want
    assert row_document(t, Row("2", {"Title": None, "Artist": " ", "Notes": ""}), fmt) is None
    # A table's template wins over every format.
    templated = table(("Title",), template="{Title} by {Artist}")
    assert row_document(templated, row, fmt) == "Let There Be Rock by AC/DC"


def test_row_document_values_keeps_one_value_and_japanese() -> None:
    t = table(("件名", "本文"), name="問い合わせ")
    row = Row("1", {"件名": None, "本文": "炊飯器が動かない"})
    assert row_document(t, row, "values") == "炊飯器が動かない"
    assert row_document(t, row, "columns") == "本文: 炊飯器が動かない"
    assert row_document(t, row) == "問い合わせ | 本文: 炊飯器が動かない"  # the default: table-columns


def test_row_document_unknown_format_is_named() -> None:
    with pytest.raises(ValueError, match="'labels'"):
        row_document(table(("Title",)), Row("1", {"Title": "x"}), "labels")


# --- chunking ---------------------------------------------------------------------------------
class WordTokenizer:
    """One token per word or punctuation mark; counts its own calls."""

    chars_bound_tokens = False

    def __init__(self) -> None:
        self.calls = 0

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        self.calls += 1
        return [m.span() for m in re.finditer(r"\w+|[^\w\s]", text)]

    def count(self, text: str) -> int:
        return len(self.token_spans(text))


class CharTokenizer(WordTokenizer):
    """One token per code point (like BERT for CJK), declares the chars bound."""

    chars_bound_tokens = True

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        self.calls += 1
        return [(i, i + 1) for i, ch in enumerate(text) if not ch.isspace()]


def test_empty_and_short() -> None:
    tok = WordTokenizer()
    c = Chunker(tok, max_tokens=10)
    assert c.chunk("") == [] and c.chunk("  \n\t ") == []
    assert c.chunk("  hello world  ") == ["hello world"]


def test_fast_path_only_when_tokenizer_allows() -> None:
    fast = CharTokenizer()
    assert Chunker(fast, max_tokens=20).chunk("short text") == ["short text"] and fast.calls == 0
    slow = WordTokenizer()
    assert Chunker(slow, max_tokens=20).chunk("short text") == ["short text"] and slow.calls == 1
    hangul = CharTokenizer()
    Chunker(hangul, max_tokens=20).chunk("한국어 텍스트")  # NFD jamo: not char-bound
    assert hangul.calls == 1


def test_windows_respect_limit_overlap_and_sentences() -> None:
    tok = WordTokenizer()
    text = " ".join(f"Sentence number {i} has some words." for i in range(40))
    c = Chunker(tok, max_tokens=30, overlap=5)
    chunks = c.chunk(text)
    assert len(chunks) > 5
    assert all(tok.count(ch) <= 30 for ch in chunks)
    assert all(ch.endswith(".") for ch in chunks)  # a sentence end was always near the window's end
    for a, b in zip(chunks, chunks[1:], strict=False):  # consecutive chunks share 1-5 words of context
        aw, bw = a.split(), b.split()
        assert any(aw[-n:] == bw[:n] for n in range(1, 6))
    words = set(re.findall(r"\w+", text))
    assert words == set(re.findall(r"\w+", " ".join(chunks)))  # nothing lost


def test_space_cut_without_sentences_and_zero_overlap() -> None:
    tok = WordTokenizer()
    text = " ".join(f"w{i}" for i in range(100))
    chunks = Chunker(tok, max_tokens=10, overlap=0).chunk(text)
    assert chunks == [" ".join(f"w{i}" for i in range(s, min(s + 10, 100))) for s in range(0, 100, 10)]


def test_max_chars_is_respected() -> None:
    tok = WordTokenizer()
    text = " ".join(["supercalifragilistic"] * 30)
    chunks = Chunker(tok, max_tokens=100, overlap=0, max_chars=70).chunk(text)
    assert all(len(c) <= 70 for c in chunks) and len(chunks) >= 9
    giant = Chunker(tok, max_tokens=100, max_chars=50).chunk("x" * 180)  # one token longer than max_chars
    assert "".join(giant) == "x" * 180 and all(len(c) <= 50 for c in giant)


def test_never_cuts_before_combining_marks_or_surrogates() -> None:
    tok = CharTokenizer()
    text = "e\u0301" * 50 + " 👍🏽" * 10 + " bad \ud83d lone"
    chunks = Chunker(tok, max_tokens=7, overlap=2).chunk(text)
    for ch in chunks:
        ch.encode("utf-8")  # no lone surrogates left
        assert not unicodedata.combining(ch[0])


def test_overlap_is_clamped() -> None:
    tok = WordTokenizer()
    chunks = Chunker(tok, max_tokens=4, overlap=100).chunk(" ".join(str(i) for i in range(20)))
    assert all(tok.count(c) <= 4 for c in chunks) and chunks[-1].endswith("19")
    with pytest.raises(ValueError):
        Chunker(tok, max_tokens=0)


# --- the real MiniLM tokenizer --------------------------------------------------------------
JAPANESE = (
    "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。何でも薄暗いじめじめした所で"
    "ニャーニャー泣いていた事だけは記憶している。吾輩はここで始めて人間というものを見た。"
)


def test_japanese_without_spaces_real_tokenizer(minilm) -> None:  # noqa: ANN001
    tok = minilm.tokenizer()
    limit = minilm.max_tokens
    text = JAPANESE * 12
    assert " " not in text and tok.count(text) > 3 * limit
    chunks = Chunker(tok, max_tokens=limit, overlap=16).chunk(text)
    assert len(chunks) >= 4
    for ch in chunks:
        assert tok.count(ch) <= limit
        assert ch in text and "\ufffd" not in ch
    assert chunks[0].startswith("吾輩は猫") and chunks[-1].endswith("見た。")
    assert sum(ch.endswith("。") for ch in chunks[:-1]) >= len(chunks) - 2  # cut at sentence ends


def test_korean_and_mixed_real_tokenizer(minilm) -> None:  # noqa: ANN001
    tok = minilm.tokenizer()
    assert tok.chars_bound_tokens is True
    korean = "한국어 문장은 이렇게 길게 이어집니다 " * 10  # each syllable may be several wordpieces
    assert len(korean) < 600
    for ch in Chunker(tok, max_tokens=64, overlap=8).chunk(korean):
        assert tok.count(ch) <= 64
    mixed = ("unbelievably antidisestablishmentarianism 東京 " * 40).strip()
    for ch in Chunker(tok, max_tokens=50, overlap=10).chunk(mixed):
        assert tok.count(ch) <= 50 and ch in mixed
