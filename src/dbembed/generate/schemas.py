"""The four load-test schemas (chat, orders, support, catalog) as column generators.

The schemas deliberately carry the awkward cases a real reader meets: a table named
with a space (``Order Details``), a WITHOUT ROWID table (``products``), views, and
columns that must not be embedded (integer ids, money, floats, blobs).  Every TEXT
column is part of a row's "payload": duplicate rows repeat the whole payload (what a
replayed load test does) while ids, numbers and blobs stay fresh.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dbembed.generate import vocab
from dbembed.generate.pool import TextPool

BASE_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z: timestamps are offsets from a fixed date


@dataclass
class Ctx:
    """What a column generator sees: the file's RNG, the text pool, the row's language and id."""

    rng: random.Random
    pool: TextPool
    lang: str = "en"
    i: int = 0
    parent_rows: dict[str, int] = field(default_factory=dict)
    blob: bytes = b""  # a per-file random buffer that blob columns slice (fast, deterministic)

    def iso(self) -> str:
        return time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(BASE_EPOCH + self.rng.randrange(0, 180 * 86400))
        )

    def fk(self, table: str) -> int:
        return self.rng.randint(1, max(1, self.parent_rows.get(table, 1)))

    def bytes_(self, lo: int, hi: int) -> bytes:
        n = self.rng.randint(lo, hi)
        start = self.rng.randrange(0, len(self.blob) - n)
        return self.blob[start : start + n]

    def text(self, kind: str) -> str:
        return self.pool.text(kind, self.lang, self.rng)

    def value(self, attr: str) -> str:
        return self.pool.value(attr, self.lang, self.rng)


Gen = Callable[[Ctx], Any]


@dataclass(frozen=True)
class Column:
    name: str
    decl: str  # SQL type and constraints
    gen: Gen
    payload: bool  # TEXT content that duplicate rows repeat


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    weight: float  # share of the file's rows
    suffix: str = ""  # e.g. "WITHOUT ROWID"
    constraints: str = ""
    indexes: tuple[str, ...] = ()
    rowid_key: bool = True  # the first column is an INTEGER PRIMARY KEY equal to the rowid

    def ddl(self) -> list[str]:
        cols = [f'"{c.name}" {c.decl}' for c in self.columns]
        if self.constraints:
            cols.append(self.constraints)
        return [f'CREATE TABLE "{self.name}" ({", ".join(cols)}) {self.suffix}'.rstrip(), *self.indexes]

    def insert_sql(self) -> str:
        names = ", ".join(f'"{c.name}"' for c in self.columns)
        marks = ", ".join("?" for _ in self.columns)
        return f'INSERT INTO "{self.name}" ({names}) VALUES ({marks})'

    @property
    def payload_idx(self) -> list[int]:
        return [n for n, c in enumerate(self.columns) if c.payload]


@dataclass(frozen=True)
class Schema:
    name: str
    file_stems: tuple[str, ...]  # typical file names for this app
    tables: tuple[Table, ...]
    views: tuple[str, ...] = ()


def _id(c: Ctx) -> int:
    return c.i


def _col(name: str, decl: str, gen: Gen) -> Column:
    """A column; TEXT columns other than keys are payload (repeated by duplicate rows)."""
    return Column(name, decl, gen, payload=decl.startswith("TEXT") and "PRIMARY KEY" not in decl)


CHAT = Schema(
    "chat",
    ("chat", "messages", "slack_export"),
    (
        Table(
            "users",
            (
                _col("user_id", "INTEGER PRIMARY KEY", _id),
                _col("username", "TEXT NOT NULL", lambda c: f"user{c.i}"),
                _col("display_name", "TEXT", lambda c: c.value("name")),
                _col("email", "TEXT", lambda c: c.value("email")),
                _col("created_at", "TEXT", Ctx.iso),
                _col("avatar", "BLOB", lambda c: c.bytes_(16, 96)),
            ),
            weight=0.08,
        ),
        Table(
            "messages",
            (
                _col("id", "INTEGER PRIMARY KEY", _id),
                _col("conversation_id", "INTEGER NOT NULL", lambda c: c.rng.randint(1, 500)),
                _col("user_id", "INTEGER REFERENCES users(user_id)", lambda c: c.fk("users")),
                _col("sent_at", "TEXT NOT NULL", Ctx.iso),
                _col("body", "TEXT", lambda c: c.text("chat")),
                _col("edited", "INTEGER DEFAULT 0", lambda c: int(c.rng.random() < 0.05)),
                _col("latency_ms", "REAL", lambda c: round(c.rng.expovariate(1 / 40), 3)),
                _col("attachment", "BLOB", lambda c: c.bytes_(0, 64) if c.rng.random() < 0.2 else None),
            ),
            weight=0.92,
            indexes=("CREATE INDEX messages_by_conversation ON messages(conversation_id, sent_at)",),
        ),
    ),
    (
        "CREATE VIEW recent_messages AS SELECT m.id, u.display_name, m.body, m.sent_at "
        "FROM messages m JOIN users u USING (user_id) ORDER BY m.sent_at DESC LIMIT 100",
    ),
)

ORDERS = Schema(
    "orders",
    ("orders", "shop", "checkout"),
    (
        Table(
            "customers",
            (
                _col("customer_id", "INTEGER PRIMARY KEY", _id),
                _col("full_name", "TEXT NOT NULL", lambda c: c.value("name")),
                _col("email", "TEXT", lambda c: c.value("email")),
                _col("phone", "TEXT", lambda c: c.value("phone")),
                _col("city", "TEXT", lambda c: c.value("city")),
                _col("loyalty_points", "INTEGER", lambda c: c.rng.randint(0, 5000)),
            ),
            weight=0.12,
        ),
        Table(
            "orders",
            (
                _col("order_id", "INTEGER PRIMARY KEY", _id),
                _col("customer_id", "INTEGER REFERENCES customers(customer_id)", lambda c: c.fk("customers")),
                _col("ordered_at", "TEXT NOT NULL", Ctx.iso),
                _col("status", "TEXT", lambda c: c.rng.choice(vocab.STATUSES_ORDER)),
                _col("total_cents", "INTEGER", lambda c: c.rng.randint(199, 250_000)),
                _col("currency", "TEXT", lambda c: c.rng.choice(vocab.CURRENCIES)),
                _col("notes", "TEXT", lambda c: c.text("note")),
                _col("payload", "BLOB", lambda c: c.bytes_(32, 128)),
            ),
            weight=0.48,
        ),
        Table(
            "Order Details",
            (
                _col("order_detail_id", "INTEGER PRIMARY KEY", _id),
                _col("order_id", "INTEGER NOT NULL", lambda c: c.fk("orders")),
                _col("product_sku", "TEXT", lambda c: f"SKU-{c.rng.randint(1, 9999):05d}"),
                _col("quantity", "INTEGER", lambda c: c.rng.randint(1, 6)),
                _col("unit_price", "REAL", lambda c: round(c.rng.uniform(1, 400), 2)),
                _col("discount", "REAL", lambda c: c.rng.choice([0.0, 0.0, 0.05, 0.1, 0.25])),
                _col("gift_message", "TEXT", lambda c: c.text("gift")),
            ),
            weight=0.40,
        ),
    ),
    (
        'CREATE VIEW "Order Totals" AS SELECT o.order_id, o.status, '
        "SUM(d.quantity * d.unit_price * (1 - d.discount)) AS total FROM orders o "
        'JOIN "Order Details" d ON d.order_id = o.order_id GROUP BY o.order_id',
    ),
)

SUPPORT = Schema(
    "support",
    ("support", "tickets", "helpdesk"),
    (
        Table(
            "tickets",
            (
                _col("ticket_id", "INTEGER PRIMARY KEY", _id),
                _col("created_at", "TEXT NOT NULL", Ctx.iso),
                _col("priority", "TEXT", lambda c: c.rng.choice(vocab.PRIORITIES)),
                _col("status", "TEXT", lambda c: c.rng.choice(vocab.STATUSES_TICKET)),
                _col("customer_email", "TEXT", lambda c: c.value("email")),
                _col("subject", "TEXT", lambda c: c.text("subject")),
                _col("description", "TEXT", lambda c: c.text("description")),
                _col("sla_minutes", "INTEGER", lambda c: c.rng.choice([60, 240, 480, 1440])),
            ),
            weight=0.45,
        ),
        Table(
            "ticket_comments",
            (
                _col("comment_id", "INTEGER PRIMARY KEY", _id),
                _col("ticket_id", "INTEGER REFERENCES tickets(ticket_id)", lambda c: c.fk("tickets")),
                _col("author", "TEXT", lambda c: c.value("name")),
                _col("is_internal", "INTEGER", lambda c: int(c.rng.random() < 0.3)),
                _col("body", "TEXT", lambda c: c.text("comment")),
                _col("created_at", "TEXT", Ctx.iso),
            ),
            weight=0.55,
        ),
    ),
    (
        "CREATE VIEW open_tickets AS SELECT ticket_id, subject, priority, created_at "
        "FROM tickets WHERE status IN ('open', 'pending')",
    ),
)

CATALOG = Schema(
    "catalog",
    ("catalog", "products", "inventory"),
    (
        Table(
            "products",
            (
                _col("sku", "TEXT PRIMARY KEY", lambda c: f"SKU-{c.i:06d}"),
                _col("name", "TEXT NOT NULL", lambda c: c.text("product_name")),
                _col("category", "TEXT", lambda c: c.rng.choice(vocab.CATEGORIES)),
                _col("description", "TEXT", lambda c: c.text("product_desc")),
                _col("price_cents", "INTEGER", lambda c: c.rng.randint(99, 99_999)),
                _col("weight_grams", "REAL", lambda c: round(c.rng.uniform(10, 5000), 1)),
                _col("in_stock", "INTEGER", lambda c: c.rng.randint(0, 300)),
                _col("thumbnail", "BLOB", lambda c: c.bytes_(64, 256)),
            ),
            weight=0.35,
            suffix="WITHOUT ROWID",
            rowid_key=False,
        ),
        Table(
            "product_reviews",
            (
                _col("review_id", "INTEGER PRIMARY KEY", _id),
                _col("sku", "TEXT", lambda c: f"SKU-{c.fk('products'):06d}"),
                _col("rating", "INTEGER", lambda c: c.rng.choice([1, 2, 3, 4, 4, 5, 5, 5])),
                _col("title", "TEXT", lambda c: c.text("review_title")),
                _col("review_text", "TEXT", lambda c: c.text("review_text")),
                _col("helpful_votes", "INTEGER", lambda c: c.rng.randint(0, 120)),
                _col("reviewed_at", "TEXT", Ctx.iso),
            ),
            weight=0.65,
        ),
    ),
    (
        "CREATE VIEW top_rated AS SELECT p.sku, p.name, AVG(r.rating) AS avg_rating "
        "FROM products p JOIN product_reviews r ON r.sku = p.sku GROUP BY p.sku HAVING COUNT(*) > 2",
    ),
)

SCHEMAS: dict[str, Schema] = {s.name: s for s in (CHAT, ORDERS, SUPPORT, CATALOG)}


def split_rows(schema: Schema, rows: int) -> list[int]:
    """Rows per table, summing to ``rows`` (each table gets at least one row when possible)."""
    counts = [max(1, int(rows * t.weight)) for t in schema.tables]
    counts[-1] = max(0, rows - sum(counts[:-1]))
    if rows < len(counts):
        counts = [1 if n < rows else 0 for n in range(len(counts))]
    return counts
