"""Embedding providers side by side, in one run, on this machine.

1. Speed: chunks/s of the bundled transformer (all-MiniLM-L6-v2) and of the static
   model distilled from it (``local:minilm-static``), on CPU, over ~5k varied rows.
2. Quality of static vs transformer on the same corpus: recall@10 of the transformer's
   top 10 (how much of the transformer's result list the static model reproduces), and
   hit@10 on planted query/row pairs (paraphrased queries with little word overlap).
3. Remote throughput through the local Bedrock wire-format server (tests/fake_servers.py)
   that throttles above a request rate, for several configured concurrencies: the
   adaptive limiter should reach the server's rate without a storm of 429s.

Run: ``python benchmarks/bench_providers.py [--rows 5000] [--remote-texts 600]``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.fake_servers

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# (row planted in the corpus, paraphrased query that should find it)
PLANTED = [
    (
        "Support ticket | Subject: espresso machine leaks water onto the kitchen counter",
        "coffee maker dripping",
    ),
    (
        "Product | Name: Trailblazer 2 | Category: waterproof hiking boots for mountain trekking",
        "footwear for hikes",
    ),
    ("Note | Body: the quarterly revenue fell because of weak holiday sales", "why did income drop"),
    ("Pet | Name: Biscuit | Species: golden retriever puppy | Owner: Marta", "young dog"),
    (
        "Track | Name: Moonlight Sonata | Composer: Beethoven | Genre: Classical",
        "piano piece by a German composer",
    ),
    ("Recipe | Dish: pad thai | Ingredients: rice noodles, tamarind, peanuts, shrimp", "Thai noodle dish"),
    ("Incident | Summary: database server ran out of disk space overnight", "storage full on DB host"),
    ("Employee | Role: pediatric nurse | Ward: children's hospital", "medical worker caring for kids"),
    (
        "Trip | Destination: Kyoto | Notes: visited temples and cherry blossoms in spring",
        "sightseeing in Japan",
    ),
    ("Message | Text: my flight to Boston was cancelled due to the snowstorm", "travel disrupted by weather"),
    ("Book | Title: A Brief History of Time | Author: Stephen Hawking", "cosmology for general readers"),
    ("Review | Text: the hotel room was filthy and the staff were rude", "bad accommodation experience"),
    ("Car | Model: Model 3 | Maker: Tesla | Drive: electric", "battery powered vehicle"),
    ("Task | Title: renew the TLS certificate before it expires", "SSL cert renewal"),
    ("Plant | Name: monstera | Care: bright indirect light, water weekly", "houseplant watering schedule"),
    (
        "Course | Title: introduction to linear algebra | Topics: matrices, vectors",
        "math class about matrices",
    ),
    ("Order | Item: wireless noise-cancelling headphones | Status: shipped", "bluetooth headset delivery"),
    ("Symptom log | Entry: persistent headache and mild fever since Monday", "feeling sick with a migraine"),
    ("Invoice | Vendor: Acme Plumbing | Service: fixed burst pipe in basement", "plumber repair bill"),
    ("Event | Name: marathon | City: Berlin | Distance: 42 km", "long distance running race"),
    ("Game | Title: chess tournament final | Result: checkmate in 34 moves", "board game championship"),
    ("Weather | Report: heavy rain and thunderstorms expected tomorrow", "stormy forecast"),
    ("Listing | Property: two-bedroom apartment near the river, balcony", "flat for rent by the water"),
    ("Job | Title: senior backend engineer | Stack: Python, PostgreSQL", "software developer position"),
    (
        "Film | Title: Jaws | Plot: a great white shark terrorises a beach town",
        "movie about a dangerous fish",
    ),
    ("Bank | Alert: suspicious card transaction blocked in another country", "possible credit card fraud"),
    ("Garden | Task: prune the rose bushes in late winter", "trimming flowers"),
    ("Lab | Result: blood glucose level elevated, retest advised", "high sugar in blood test"),
    ("Chat | Message: can we move our meeting to Thursday afternoon?", "reschedule appointment"),
    ("Museum | Exhibit: ancient Egyptian mummies and sarcophagi", "pharaoh burial artifacts"),
]


def make_corpus(n: int, seed: int = 7) -> list[str]:
    """Varied database-like rows (faker, seeded) with the planted rows mixed in."""
    from faker import Faker

    fake = Faker()
    Faker.seed(seed)
    rng = random.Random(seed)
    makers = [
        lambda: f"Customer | Name: {fake.name()} | City: {fake.city()} | Company: {fake.company()}",
        lambda: f"Album | Title: {fake.catch_phrase()} | Artist: {fake.name()}",
        lambda: f"Invoice | Total: {rng.uniform(1, 999):.2f} | Billing address: {fake.address()}",
        lambda: f"Note | Body: {fake.paragraph(nb_sentences=rng.randint(1, 6))}",
        lambda: f"Product | Name: {fake.bs()} | Description: {fake.sentence(nb_words=12)}",
        lambda: (
            f"Message | From: {fake.user_name()} | Text: {fake.text(max_nb_chars=rng.choice([80, 200, 600]))}"
        ),
        lambda: f"Employee | Job: {fake.job()} | Email: {fake.email()} | Hired: {fake.date()}",
    ]
    rows = [rng.choice(makers)() for _ in range(n - len(PLANTED))]
    for row, _ in PLANTED:
        rows.insert(rng.randrange(len(rows) + 1), row)
    return rows


def speed(provider, texts: list[str]) -> tuple[float, np.ndarray]:  # noqa: ANN001
    provider.embed_documents(texts[:64])  # warm up
    t0 = time.perf_counter()
    vecs = provider.embed_documents(texts)
    return len(texts) / (time.perf_counter() - t0), vecs


def quality(provider, doc_vecs, corpus: list[str], queries: list[str]) -> tuple[np.ndarray, float]:  # noqa: ANN001
    q = np.stack([provider.embed_query(x) for x in queries])
    top = np.argsort(-(q @ doc_vecs.T), axis=1)[:, :10]
    planted_idx = [corpus.index(row) for row, _ in PLANTED]
    hits = np.mean([planted_idx[i] in top[i] for i in range(len(PLANTED))])
    return top, float(hits)


def local_section(rows: int) -> list[tuple[str, str, str, str]]:
    from dbembed.config import load_settings
    from dbembed.embed.local import SentenceTransformerProvider
    from dbembed.embed.static import StaticModelProvider

    corpus = make_corpus(rows)
    rng = random.Random(3)
    # Queries: the planted paraphrases, plus 70 "find rows like this" queries cut from random rows.
    extra = [" ".join(corpus[rng.randrange(len(corpus))].split()[2:8]) for _ in range(70)]
    queries = [q for _, q in PLANTED] + extra

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(data_dir=Path(tmp))
        t0 = time.perf_counter()
        static = StaticModelProvider(settings)
        distill_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        StaticModelProvider(settings)
        cached_s = time.perf_counter() - t0
        transformer = SentenceTransformerProvider(device="cpu")
        st_rate, st_vecs = speed(transformer, corpus)
        sm_rate, sm_vecs = speed(static, corpus)
        st_top, st_hits = quality(transformer, st_vecs, corpus, queries)
        sm_top, sm_hits = quality(static, sm_vecs, corpus, queries)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(st_top, sm_top, strict=True)])
    print(
        f"corpus: {len(corpus)} rows, {sum(map(len, corpus)) / len(corpus):.0f} chars avg; "
        f"{len(queries)} queries ({len(PLANTED)} planted); static distill {distill_s:.1f}s, "
        f"cached load {cached_s:.2f}s; dims {transformer.dimensions} vs {static.dimensions}"
    )
    return [
        ("chunks/s on CPU", f"{st_rate:,.0f}", f"{sm_rate:,.0f}", f"{sm_rate / st_rate:.1f}x"),
        ("planted hit@10", f"{st_hits:.2f}", f"{sm_hits:.2f}", f"{sm_hits / st_hits:.2f}"),
        ("recall@10 of transformer top-10", "1.00", f"{recall:.2f}", f"{recall:.2f}"),
    ]


def remote_section(n_texts: int, rate: float, latency: float) -> list[tuple[str, ...]]:
    from tests.fake_servers import FakeEmbeddingServer, Faults

    from dbembed.config import load_settings
    from dbembed.embed.bedrock import BedrockProvider

    os.environ.update(
        AWS_ACCESS_KEY_ID="AKIABENCHFAKE",
        AWS_SECRET_ACCESS_KEY="bench-secret",
        AWS_EC2_METADATA_DISABLED="true",
    )
    texts = [f"benchmark text number {i} about topic {i % 17}" for i in range(n_texts)]
    out = []
    base = None
    for conc in (1, 4, 8, 16):
        with (
            FakeEmbeddingServer(Faults(rate_limit_rps=rate, latency_s=latency)) as srv,
            tempfile.TemporaryDirectory() as tmp,
        ):
            s = load_settings(
                data_dir=Path(tmp),
                aws_region="us-east-1",
                bedrock_endpoint_url=srv.url,
                concurrency=conc,
                max_retries=12,
                request_timeout_s=10,
                retry_backoff_s=0.05,
                retry_backoff_max_s=1.0,
            )
            p = BedrockProvider("amazon.titan-embed-text-v2:0", s)
            t0 = time.perf_counter()
            p.embed_documents(texts)
            tput = n_texts / (time.perf_counter() - t0)
            p.close()
        base = base or tput
        u = p.usage
        out.append(
            (
                str(conc),
                f"{tput:,.0f}",
                f"{tput / base:.2f}x",
                f"{tput / rate:.2f}",
                f"{u.throttles / u.requests:.1%}",
                str(p._limiter.lowest),
                str(srv.stats.max_in_flight_seen),
            )
        )
    return out


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(r: tuple[str, ...]) -> str:
        cells = zip(r, widths, strict=True)
        return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(cells))

    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--remote-texts", type=int, default=600)
    ap.add_argument("--rate", type=float, default=100.0, help="server request rate limit (req/s)")
    ap.add_argument("--latency", type=float, default=0.02, help="server service time per request (s)")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs visible; torch threads per dbembed.embed.local.cpu_threads()\n")
    print("== local: transformer (local:all-MiniLM-L6-v2) vs static (local:minilm-static), CPU ==")
    print(table(("metric", "transformer", "static", "static/transformer"), local_section(args.rows)))
    print(
        f"\n== remote: Bedrock Titan v2 wire format, server throttles above {args.rate:g} req/s, "
        f"{args.latency * 1000:g} ms per request, {args.remote_texts} texts =="
    )
    print(
        table(
            (
                "concurrency",
                "texts/s",
                "vs conc=1",
                "of server rate",
                "429 share",
                "lowest limit",
                "server max in-flight",
            ),
            remote_section(args.remote_texts, args.rate, args.latency),
        )
    )


if __name__ == "__main__":
    main()
