"""The optional LLM summarizer, against a local HTTP server speaking the OpenAI chat-completions wire format."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dbembed.chat import Actor, open_store
from dbembed.errors import EmbeddingError


class _Server:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
                )
                if outer.fail:
                    self._send(500, {"error": {"message": "model overloaded", "type": "server_error"}})
                    return
                transcript = body["messages"][-1]["content"]
                summary = "Summary: " + " / ".join(
                    line.removeprefix("User: ")
                    for line in transcript.splitlines()
                    if line.startswith("User: ")
                )
                self._send(200, {
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": summary}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                })  # fmt: skip

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture()
def llm() -> Iterator[_Server]:
    server = _Server()
    yield server
    server.httpd.shutdown()


def test_chat_summaries_via_openai_compatible_endpoint(settings, minilm, llm, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("TEST_LLM_KEY", "sk-local-test")
    s = settings.model_copy(update={"chat_summarizer": "openai:tiny-chat", "chat_summarizer_base_url": llm.url,
                                    "chat_summarizer_api_key_env": "TEST_LLM_KEY"})  # fmt: skip
    alice = Actor("alice")
    with open_store(s) as store:
        store._provider = minilm
        store.add_turn(
            alice, 1, "I am planning a trip to Hokkaido", "Great, in which season?", theme="travel"
        )
        store.add_turn(alice, 1, "In winter, for the snow festival", "Sapporo in February then.")
        store.add_turn(alice, 2, "Best way to store coffee beans?", "Airtight, cool and dark.")
        res = store.sync()
        assert (res.mode, res.memories_written, res.complete) == ("chat", 2, True)
        assert len(llm.requests) == 2
        req = llm.requests[0]
        assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-local-test"
        assert req["body"]["model"] == "tiny-chat" and req["body"]["messages"][0]["role"] == "system"
        assert "User: I am planning a trip to Hokkaido" in req["body"]["messages"][1]["content"]

        hit = store.search(alice, "snow festival in Sapporo", k=1)[0]
        assert hit.kind == "chat" and hit.summary_model == "openai:tiny-chat" and hit.theme == "travel"
        assert hit.summary == "Summary: I am planning a trip to Hokkaido / In winter, for the snow festival"
        assert hit.turn_no == 1

        assert store.sync().memories_written == 0 and len(llm.requests) == 2  # nothing new: no LLM call
        store.add_turn(alice, 2, "And green tea?", "Same rules.")
        assert store.sync().memories_written == 1 and len(llm.requests) == 3  # only chat 2 is re-summarized
        chat2 = [h for h in store.search(alice, "coffee", k=5) if h.chat_id == 2]
        assert len(chat2) == 1 and "green tea" in chat2[0].summary

        llm.fail = True
        store.add_turn(alice, 3, "new chat", "ok")
        with pytest.raises(EmbeddingError, match="HTTP 500"):
            store.sync()
