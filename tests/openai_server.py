"""Test-only OpenAI-compatible server on loopback: `/v1/completions` and `/v1/models` over a LocalBackend."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from realm_pipeline.evaluation.backends import LocalBackend


class OpenAIServer:
    """Serve a checkpoint like vLLM would (greedy only), on 127.0.0.1 with an OS-chosen port.

    Use as a context manager; `url` is the base URL (without /v1). `fail_next(n, status)` makes the next
    n completion requests fail with `status`, to exercise client retries. Like vLLM, it answers each
    request with the model the body names (404 for one it does not serve); `load_path` adds a model through
    POST /v1/load_lora_adapter ({lora_name, lora_path}); `cut_answers` cuts every answer at the server's
    own limit, one token short of the request's max_tokens (finish_reason `length`); `report_length` answers
    like vLLM for a hero that rambles: finish_reason `length` and usage.completion_tokens for an answer
    that used all of max_tokens (`length_answers` counts them).
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        model_name: str = "hero",
        batch_size: int = 32,
        api_key: str | None = None,
        cut_answers: bool = False,
        report_length: bool = False,
    ) -> None:
        self.batch_size = batch_size
        self.backend = LocalBackend(model_dir, batch_size=batch_size)
        self.models = {model_name: self.backend}  # served name -> its weights
        self.model_name = model_name
        self.cut_answers = cut_answers
        self.report_length = report_length
        self.length_answers = 0  # answers reported finish_reason `length`
        self.api_key = api_key  # when set, completions need `Authorization: Bearer <api_key>` (else 401)
        self.requests = 0
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321."""
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next(self, n: int, status: int = 500) -> None:
        """Answer the next n completion requests with HTTP `status`."""
        with self._lock:
            self._failures.extend([status] * n)

    def _take_failure(self) -> int | None:
        with self._lock:
            self.requests += 1
            return self._failures.pop(0) if self._failures else None

    def __enter__(self) -> OpenAIServer:
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="openai-test", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


def _make_handler(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like real servers: httpx reuses connections

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                data = [{"id": name, "object": "model"} for name in server.models]
                self._send(200, {"object": "list", "data": data})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path.rstrip("/") == "/v1/load_lora_adapter":
                body = json.loads(raw)
                server.models[body["lora_name"]] = LocalBackend(
                    body["lora_path"], batch_size=server.batch_size
                )
                self._send(200, {"status": "loaded"})
                return
            if self.path.rstrip("/") != "/v1/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            if server.api_key is not None and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                self._send(401, {"error": {"message": "invalid API key"}})
                return
            failure = server._take_failure()
            if failure is not None:
                self._send(failure, {"error": {"message": "injected failure"}})
                return
            try:
                body = json.loads(raw)
                prompts = body["prompt"]
                prompts = [prompts] if isinstance(prompts, str) else list(prompts)
                stop = body.get("stop") or []
                stop = [stop] if isinstance(stop, str) else list(stop)
                if float(body.get("temperature", 1.0)) != 0.0:
                    raise ValueError("this test server only decodes greedily: send temperature 0")
                max_tokens = int(body.get("max_tokens", 16))
            except (ValueError, KeyError, TypeError) as exc:
                self._send(400, {"error": {"message": str(exc)}})
                return
            model = server.models.get(body.get("model"))
            if model is None:
                self._send(404, {"error": {"message": f"model {body.get('model')!r} does not exist"}})
                return
            # cut_answers: the server's own limit, one token below what the request asked for
            limit = max(0, max_tokens - 1) if server.cut_answers else max_tokens
            texts = model.generate(prompts, max_new_tokens=limit, stop_strings=stop)
            used = [len(model.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
            if server.cut_answers:
                finish = ["length"] * len(texts)
            elif server.report_length:
                finish = ["length" if n >= limit else "stop" for n in used]
            else:
                finish = ["stop"] * len(texts)
            with server._lock:
                server.length_answers += finish.count("length")
            usage = {}
            if server.cut_answers or server.report_length:
                usage = {"usage": {"completion_tokens": sum(used), "total_tokens": sum(used)}}
            self._send(
                200,
                {
                    "id": f"cmpl-{server.requests}",
                    "object": "text_completion",
                    "created": int(time.time()),
                    "model": body.get("model"),
                    "choices": [
                        {"index": i, "text": t, "logprobs": None, "finish_reason": f}
                        for i, (t, f) in enumerate(zip(texts, finish, strict=True))
                    ],
                    **usage,
                },
            )

    return Handler


# A tiny untied Qwen3: with tied embeddings a random model just echoes its last input token, while an untied
# random head gives varied, arbitrary-but-deterministic outputs (all batch-invariance tests need).
TINY_TEST_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "intermediate_size": 128,
    "max_position_embeddings": 256,
    "tie_word_embeddings": False,
    "seed": 0,
}


def build_test_hero(seed: int = 0) -> tuple[Any, Any]:
    """(model, tokenizer): a random tiny hero (weights from `seed`) over realm's character tokenizer."""
    from realm_pipeline.skills import CHARACTERS
    from realm_pipeline.training.hero import build_tiny_hero
    from realm_pipeline.training.tokenizer import build_char_tokenizer

    tokenizer = build_char_tokenizer(CHARACTERS)
    return build_tiny_hero({**TINY_TEST_CONFIG, "seed": seed}, tokenizer), tokenizer


def save_test_hero(directory: str | Path, seed: int = 0) -> Path:
    """Save a random tiny hero and its tokenizer like a training checkpoint; returns the directory."""
    model, tokenizer = build_test_hero(seed)
    directory = Path(directory)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def main() -> None:
    """`python tests/openai_server.py --model-dir D --name N --port P`: serve until terminated (a serve_command)."""
    import argparse
    import signal

    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = OpenAIServer(args.model_dir, model_name=args.name)
    server._httpd = ThreadingHTTPServer(("127.0.0.1", args.port), _make_handler(server))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server._httpd.shutdown).start())
    server._httpd.serve_forever()


if __name__ == "__main__":
    main()
