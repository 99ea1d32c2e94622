"""Shared machinery for remote embedding APIs: concurrency, adaptive throttling, retries, bisection.

Bedrock and OpenAI-compatible servers fail in the same few ways, so the policy
lives here once and a provider only translates its client's errors into the
exceptions below:

* ``Throttled`` (429, ThrottlingException, ServiceQuotaExceededException): slow down
  (halve the in-flight limit, pause every worker briefly) and retry with backoff.
* ``Transient`` (5xx, dropped connection): retry with exponential backoff + jitter.
* ``TimedOut``: a batch that is too slow is halved and both halves are retried; a
  single text is retried like a transient failure.  Later batches use the smaller size.
* ``Rejected`` (400, ValidationException): the service refuses the input.  A batch is
  bisected until the bad text is alone; that text fails with the service's reason and
  the rest are embedded.
* ``Fatal`` (bad credentials, unknown model): no retry; ``EmbeddingError`` at once.

Retries are bounded (``settings.max_retries`` per batch); when they run out the call
raises ``EmbeddingError`` so the pipeline fails the affected files and the next run
resumes them.  Every input index is written exactly once, so nothing is lost or duplicated.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from abc import abstractmethod
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dbembed.embed.base import EmbeddingProvider, InputType, Tokenizer, check_vectors
from dbembed.embed.tokenize import EstimatingTokenizer
from dbembed.errors import (
    EmbeddingError,
    Fatal,
    InputRejected,
    Rejected,
    RemoteFailure,
    Throttled,
    TimedOut,
    Transient,
)

if TYPE_CHECKING:
    from dbembed.config import EmbedSettings

log = logging.getLogger("dbembed.embed")


@dataclass
class CallResult:
    """One successful request: vectors in input order (an array, or a list of per-text lists that
    ``check_vectors`` validates one by one), and tokens billed if the service says."""

    vectors: np.ndarray | list[Any]
    tokens: int | None = None


class AdaptiveLimiter:
    """AIMD limit on in-flight requests, shared by every thread using one provider.

    A throttle halves the limit (at most once per wave: only requests started after the
    last decrease can cause another) and pauses new requests for a moment; each run of
    ``limit`` successes raises it by one, back up to the configured concurrency.
    """

    def __init__(self, max_limit: int) -> None:
        self.max_limit = max(1, int(max_limit))
        self.limit = self.max_limit
        self.lowest = self.max_limit  # lowest limit reached (reported by describe, checked by tests)
        self.in_flight = 0
        self._cond = threading.Condition()
        self._successes = 0
        self._last_decrease = 0.0
        self._pause_until = 0.0

    def acquire(self, stop: threading.Event) -> float | None:
        """Wait for a slot; returns the start time, or None when ``stop`` was set."""
        with self._cond:
            while True:
                if stop.is_set():
                    return None
                now = time.monotonic()
                if self.in_flight < self.limit and now >= self._pause_until:
                    self.in_flight += 1
                    return now
                delay = max(0.0, self._pause_until - now) if self.in_flight < self.limit else 0.05
                self._cond.wait(min(max(delay, 0.001), 0.05))

    def release(self, started: float, outcome: str, pause_s: float = 0.0) -> None:
        with self._cond:
            self.in_flight -= 1
            if outcome == "ok":
                self._successes += 1
                if self._successes >= self.limit and self.limit < self.max_limit:
                    self.limit += 1
                    self._successes = 0
            elif outcome == "throttle":
                self._successes = 0
                if started >= self._last_decrease:
                    self.limit = max(1, self.limit // 2)
                    self.lowest = min(self.lowest, self.limit)
                    self._last_decrease = time.monotonic()
                    log.info("throttled: in-flight limit now %d", self.limit)
                self._pause_until = max(self._pause_until, time.monotonic() + pause_s)
            self._cond.notify_all()


@dataclass
class _Outcome:
    kind: str  # "ok", "split", "rejected"
    batch: list[int]
    vectors: np.ndarray | None = None
    parts: list[list[int]] | None = None
    reason: str = ""
    bad: dict[int, str] | None = None  # positions in ``batch`` whose vector failed the checks


class RemoteProvider(EmbeddingProvider):
    """Base for HTTP/API providers: subclasses set the model attributes and implement ``_call``."""

    def __init__(self, settings: EmbedSettings) -> None:
        super().__init__()
        self.concurrency = max(1, int(settings.concurrency))
        self.max_retries = max(0, int(settings.max_retries))
        self.timeout_s = float(settings.request_timeout_s)
        self.backoff_s = float(settings.retry_backoff_s)
        self.backoff_max_s = float(settings.retry_backoff_max_s)
        self._limiter = AdaptiveLimiter(self.concurrency)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._batch_cap: int | None = None  # lowered after timeouts
        self._tokenizer: Tokenizer = EstimatingTokenizer()

    # -- to implement --------------------------------------------------------------
    @abstractmethod
    def _call(self, texts: list[str], input_type: InputType) -> CallResult:
        """Send one request.  Raise a ``RemoteFailure`` subclass on failure."""

    # -- EmbeddingProvider ---------------------------------------------------------
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    def _embed_batch(self, texts: list[str], input_type: InputType) -> np.ndarray:
        return self._embed_many(texts, input_type)

    def _embed_many(self, texts: list[str], input_type: InputType) -> np.ndarray:
        vectors, failures = self._run(texts, input_type)
        if failures:
            index, reason = min(failures.items())
            raise InputRejected(f"{self.model_id} rejected input {index}: {reason}")
        return vectors

    def embed_documents_partial(self, texts: Sequence[str]) -> tuple[np.ndarray, dict[int, str]]:
        return self._run(list(texts), "document")

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "concurrency": self.concurrency, "in_flight_limit": self._limiter.limit}

    # -- machinery -----------------------------------------------------------------
    def _batches(self, order: list[int], texts: list[str]) -> list[list[int]]:
        batches = super()._batches(order, texts)
        cap = self._batch_cap
        if cap is None:
            return batches
        return [b[i : i + cap] for b in batches for i in range(0, len(b), cap)]

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="dbembed-embed")
            return self._pool

    def _run(self, texts: list[str], input_type: InputType) -> tuple[np.ndarray, dict[int, str]]:
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        failures: dict[int, str] = {}
        if not texts:
            return out, failures
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        stop = threading.Event()
        pool = self._executor()
        pending: set[Future[_Outcome]] = {
            pool.submit(self._attempt, b, texts, input_type, stop) for b in self._batches(order, texts)
        }
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    res = fut.result()  # EmbeddingError propagates (after stopping the rest)
                    if res.kind == "ok" and res.vectors is not None:
                        out[res.batch] = res.vectors  # checked and normalised by _accept
                        failures.update({res.batch[j]: why for j, why in (res.bad or {}).items()})
                    elif res.kind == "split" and res.parts:
                        pending |= {pool.submit(self._attempt, p, texts, input_type, stop) for p in res.parts}
                    else:
                        failures.update(dict.fromkeys(res.batch, res.reason))
        except BaseException:
            stop.set()
            for fut in pending:
                fut.cancel()
            self.usage.add(failures=len(texts) - len(failures))
            raise
        return out, failures

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with 'equal jitter'; a server's Retry-After is a floor."""
        ceiling = min(self.backoff_max_s, self.backoff_s * (2 ** (attempt - 1)))
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, 300.0))
        return delay

    def _attempt(
        self, batch: list[int], texts: list[str], input_type: InputType, stop: threading.Event
    ) -> _Outcome:
        """Embed one batch with retries; runs in a pool thread."""
        batch_texts = [texts[i] for i in batch]
        attempt = 0
        while True:
            started = self._limiter.acquire(stop)
            if started is None:
                raise EmbeddingError(f"{self.model_id}: cancelled")
            self.usage.add(requests=1)
            try:
                result = self._call(batch_texts, input_type)
            except Throttled as exc:
                failure: RemoteFailure = exc
                self.usage.add(throttles=1)
                self._limiter.release(started, "throttle", pause_s=self._delay(1, None))
            except TimedOut as exc:
                failure = exc
                self._limiter.release(started, "error")
                if len(batch) > 1:
                    half = (len(batch) + 1) // 2
                    self._batch_cap = min(self._batch_cap or len(batch), half)
                    self.usage.add(retries=1)
                    log.info(
                        "%s: request timed out; retrying %d texts as two halves", self.model_id, len(batch)
                    )
                    return _Outcome("split", batch, parts=[batch[:half], batch[half:]])
            except Transient as exc:
                failure = exc
                self._limiter.release(started, "error")
            except Rejected as exc:
                self._limiter.release(started, "rejected")
                if len(batch) > 1:  # bisect to find the text(s) the service refuses
                    half = len(batch) // 2
                    return _Outcome("split", batch, parts=[batch[:half], batch[half:]])
                self.usage.add(failures=1)
                log.warning(
                    "%s rejected one text (%d chars): %s", self.model_id, len(batch_texts[0]), exc.reason
                )
                return _Outcome("rejected", batch, reason=exc.reason)
            except Fatal as exc:
                self._limiter.release(started, "error")
                raise EmbeddingError(f"{self.model_id}: {exc.reason}") from None
            except Exception as exc:  # a bug or an unforeseen client error: free the slot, fail loudly
                self._limiter.release(started, "error")
                raise EmbeddingError(f"{self.model_id}: unexpected {type(exc).__name__}: {exc}") from exc
            else:
                self._limiter.release(started, "ok")
                return self._accept(batch, batch_texts, result)
            attempt += 1
            if attempt > self.max_retries:
                raise EmbeddingError(
                    f"{self.model_id}: gave up after {attempt} attempts ({failure.reason})"
                ) from None
            self.usage.add(retries=1)
            delay = self._delay(attempt, failure.retry_after)
            log.debug("%s: %s; retry %d in %.2fs", self.model_id, failure.reason, attempt, delay)
            if stop.wait(delay):
                raise EmbeddingError(f"{self.model_id}: cancelled")

    def _accept(self, batch: list[int], batch_texts: list[str], result: CallResult) -> _Outcome:
        try:
            vectors, bad = check_vectors(result.vectors, len(batch), self.dimensions)
        except EmbeddingError as exc:
            raise EmbeddingError(f"{self.model_id}: {exc}") from None
        for j, reason in bad.items():
            log.warning(
                "%s returned an %s for one text (%d chars)", self.model_id, reason, len(batch_texts[j])
            )
        tokens = result.tokens
        if tokens is None:
            tokens = sum(self._tokenizer.count(t) for t in batch_texts)
        cost = self.estimate_cost(tokens) or 0.0
        self.usage.add(texts=len(batch), chars=sum(len(t) for t in batch_texts), tokens=tokens, cost_usd=cost)
        if bad:
            self.usage.add(failures=len(bad))
        return _Outcome("ok", batch, vectors=vectors, bad=bad)
