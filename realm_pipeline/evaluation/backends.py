"""Where completions come from: a local checkpoint (batched greedy decoding) or an OpenAI-compatible server.

Both take prompts already rendered with the hero's chat template (see `render`) and return the raw
completion text, so the same scorer and fingerprint apply whichever backend produced the outputs.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from realm_pipeline.lm.chat import render
from realm_pipeline.lm.weights import weights_sha256

if TYPE_CHECKING:
    from realm_pipeline.settings import HeroEval

Messages = list[dict[str, str]]

# HTTP statuses worth retrying: rate limiting and the usual transient gateway/server failures.
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class BackendError(RuntimeError):
    """A backend could not produce completions (the message names the URL or model and the cause)."""


class ServedModelError(BackendError):
    """The server does not serve the checkpoint being scored: nothing may be recorded against it."""


class TruncatedAnswerError(BackendError):
    """The server cut an answer at its own limit, below realm's budget: the level's score is refused."""


@runtime_checkable
class Backend(Protocol):
    """A source of greedy completions for chat-rendered prompts."""

    def render(self, messages: Messages) -> str:
        """Render chat messages (without the answer) into prompt text ending with the assistant tag."""
        ...

    def complete(self, prompts: list[str]) -> list[str]:
        """One completion per prompt, in order, stop strings trimmed."""
        ...

    def describe(self) -> dict:
        """Everything that determines the outputs, for eval fingerprints (JSON-serialisable)."""
        ...


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def load_problem(model_dir: str | Path, exc: BaseException) -> str:
    """What is wrong with a checkpoint directory that failed to load, naming the file where it can."""
    from realm_pipeline.lm.weights import checkpoint_problem

    first = (str(exc).strip().splitlines() or [""])[0]
    return checkpoint_problem(model_dir) or f"{model_dir}: {type(exc).__name__}: {first}"


class LocalBackend:
    """Greedy completions from a checkpoint directory, decoded in batches with `generate_batch`."""

    kind = "local"

    def __init__(
        self,
        model_dir: str | Path,
        *,
        batch_size: int = 32,
        max_new_tokens: int = 32,
        dtype: Any = "auto",
        device: str = "cpu",
        stop_strings: Sequence[str] = (),
        tie_margin: float | None = None,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from realm_pipeline.lm.generate import is_batch_invariant, resolve_dtype, resolve_tie_margin

        self.model_dir = Path(model_dir)
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.device = device
        self.stop_strings = tuple(stop_strings)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a loading bar per eval would flood the run's logs
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(str(self.model_dir), local_files_only=True)
        except Exception as exc:  # a missing dir reads as a bad hub id, a cut file as SafetensorError
            raise BackendError(f"cannot load the checkpoint: {load_problem(self.model_dir, exc)}") from exc
        model = model.to(device)
        # Cast once at load time so every call decodes in the same dtype without re-casting.
        self.dtype = resolve_dtype(model, dtype)
        self.model = model.to(self.dtype).eval()
        self.tie_margin = resolve_tie_margin(self.model, self.dtype, tie_margin)
        self.batch_invariant = is_batch_invariant(self.model, self.dtype, self.tie_margin)
        self.sha256 = weights_sha256(self.model_dir)
        # One decode at a time: a threaded server shares this backend and the model is not re-entrant-safe
        # in spirit (parallel forwards only fight over the same cores).
        self._lock = threading.Lock()
        self.last_stats: dict = {}  # generate_batch counts of the latest call (close calls, batches)

    def render(self, messages: Messages) -> str:
        """Render messages with this checkpoint's chat template."""
        return render(self.tokenizer, messages)

    def generate(
        self,
        prompts: list[str],
        *,
        max_new_tokens: int | None = None,
        stop_strings: Sequence[str] | None = None,
    ) -> list[str]:
        """Like `complete`, with per-call decoding limits (the loopback test server uses this)."""
        from realm_pipeline.lm.generate import generate_batch

        with self._lock:
            self.last_stats = {}
            return generate_batch(
                self.model,
                self.tokenizer,
                prompts,
                max_new_tokens=self.max_new_tokens if max_new_tokens is None else max_new_tokens,
                stop_strings=self.stop_strings if stop_strings is None else tuple(stop_strings),
                batch_size=self.batch_size,
                dtype=self.dtype,
                tie_margin=self.tie_margin,
                stats=self.last_stats,
            )

    def complete(self, prompts: list[str]) -> list[str]:
        """Greedy completions for rendered prompts, in input order."""
        return self.generate(prompts)

    def describe(self) -> dict:
        """Model identity, dtype, device and decoding settings (batch size only where it can matter)."""
        out = {
            "kind": self.kind,
            "model_sha256": self.sha256,  # the weights' identity; the directory name is not
            "dtype": _dtype_name(self.dtype),
            "tie_margin": self.tie_margin,  # close calls re-decoded alone in float64 (generate.py)
            "device": str(self.device).split(":")[0],
            "decoding": {
                "greedy": True,
                "max_new_tokens": self.max_new_tokens,
                "stop": list(self.stop_strings),
            },
        }
        if not self.batch_invariant:
            # Outputs may then depend on how prompts were batched, so the batch size is part of identity.
            out["batch_size"] = self.batch_size
        return out


class OpenAICompatibleBackend:
    """Greedy completions from an OpenAI-compatible `/v1/completions` server (vLLM, llama.cpp, ...)."""

    kind = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        max_new_tokens: int = 32,
        timeout: float = 60.0,
        api_key: str | None = None,
        concurrency: int = 4,
        stop_strings: Sequence[str] = (),
        tokenizer: Any = None,
        retries: int = 3,
        backoff_s: float = 0.5,
        model_sha256: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.url = (
            f"{self.base_url}/completions"
            if self.base_url.endswith("/v1")
            else f"{self.base_url}/v1/completions"
        )
        self.model = model
        self.max_new_tokens = max_new_tokens
        self.timeout = timeout
        self.api_key = api_key
        self.concurrency = max(1, concurrency)
        self.stop_strings = tuple(stop_strings)
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self._tokenizer = tokenizer  # object, or a local path loaded lazily for `render`
        self.model_sha256 = model_sha256  # the served weights' sha when known: the server cannot tell us

    @property
    def tokenizer(self) -> Any:
        """The chat-template tokenizer used by `render` (loaded from a path on first use)."""
        if self._tokenizer is None:
            raise BackendError(
                f"OpenAICompatibleBackend({self.url}) needs `tokenizer=` (object or local dir) to render "
                "chat prompts for /v1/completions"
            )
        if isinstance(self._tokenizer, str | Path):
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self._tokenizer), local_files_only=True)
        return self._tokenizer

    def render(self, messages: Messages) -> str:
        """Render messages with the served model's chat template (from the local tokenizer)."""
        return render(self.tokenizer, messages)

    def complete(self, prompts: list[str]) -> list[str]:
        """One request per prompt, `concurrency` in flight; the server batches concurrent requests itself."""
        import httpx

        if not prompts:
            return []
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        with httpx.Client(timeout=self.timeout, headers=headers, limits=limits) as client:
            if self.concurrency == 1 or len(prompts) == 1:
                return [self._complete_one(client, p) for p in prompts]
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                return list(pool.map(lambda p: self._complete_one(client, p), prompts))

    def _complete_one(self, client: Any, prompt: str) -> str:
        import httpx

        body = {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": self.max_new_tokens,
            "temperature": 0.0,
            "n": 1,
        }
        if self.stop_strings:
            body["stop"] = list(self.stop_strings)
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                resp = client.post(self.url, json=body)
            except httpx.TransportError as exc:  # refused, reset, timed out: may clear up on retry
                last = f"{type(exc).__name__}: {exc}"
                continue
            if resp.status_code in _TRANSIENT_STATUS:
                last = f"HTTP {resp.status_code}: {resp.text[:300]}"
                continue
            if resp.status_code != 200:
                raise BackendError(f"POST {self.url} failed with HTTP {resp.status_code}: {resp.text[:300]}")
            return self._parse(resp)
        raise BackendError(f"POST {self.url} failed after {self.retries + 1} attempts: {last}")

    def _parse(self, resp: Any) -> str:
        try:
            body = resp.json()
            choice = min(body["choices"], key=lambda c: c.get("index", 0))
            text = str(choice["text"])
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise BackendError(f"POST {self.url}: unexpected response {resp.text[:300]!r}") from exc
        if choice.get("finish_reason") == "length":
            used = self._completion_tokens(body, text)
            # An answer that used all of realm's own budget is the hero's miss, scored as the local backend
            # scores the same output cut at the same budget. One the server cut short of that budget (its
            # own limit) is not a wrong answer: scoring it would count the server's limit as the hero's miss.
            if used is None or used < self.max_new_tokens:
                raise TruncatedAnswerError(
                    f"POST {self.url} (model {self.model}): the server cut an answer at its own length limit "
                    f"(finish_reason 'length' after {'?' if used is None else used} tokens, below the "
                    f"max_tokens {self.max_new_tokens} realm asked for): {text[:80]!r}; score refused"
                )
        return text

    def _completion_tokens(self, body: Any, text: str) -> int | None:
        """Tokens the server generated for a one-prompt request: its `usage`, else the text re-tokenized
        with the checkpoint's tokenizer; None when neither is there."""
        usage = body.get("usage") if isinstance(body, dict) else None
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            return usage["completion_tokens"]
        if self._tokenizer is None:
            return None
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def served_models(self) -> list[str]:
        """The model names the server's `/v1/models` lists."""
        import httpx

        url = self.url.removesuffix("/completions") + "/models"
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            resp = httpx.get(url, headers=headers, timeout=self.timeout)
            resp.raise_for_status()
            return [str(m["id"]) for m in resp.json()["data"]]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise ServedModelError(f"GET {url}: cannot list the served models: {exc}") from exc

    def prove_served(self) -> None:
        """Refuse (ServedModelError) unless `/v1/models` lists exactly this backend's model name."""
        served = self.served_models()
        if self.model not in served:
            raise ServedModelError(
                f"server {self.base_url} serves {served}, not checkpoint {self.model!r}: refusing to score it"
            )

    def describe(self) -> dict:
        """Server URL, served model name (and weights sha when given) and decoding settings."""
        return {
            "kind": self.kind,
            "base_url": self.base_url,
            "model": self.model,
            "model_sha256": self.model_sha256,
            "decoding": {
                "greedy": True,
                "temperature": 0.0,
                "max_new_tokens": self.max_new_tokens,
                "stop": list(self.stop_strings),
            },
        }


class _CharCounter:
    """A tokenizer's call shape, one id per character: how a simulated hero's answer budgets are sized."""

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [ord(c) for c in text]}


class SimulatedBackend:
    """A simulated hero's answers (simulation.hero.answer) to the eval items it is given, for the real scorer.

    Each item is answered with its reference answer with the checkpoint's true accuracy at the item's
    level, else a wrong answer, decided by a hash of (the hero's seed, the checkpoint id, the item's key:
    a hash of its rendered prompt), so the same checkpoint answers the same item the same way every time.
    """

    kind = "simulated"

    def __init__(
        self,
        model_dir: str | Path,
        params: Any,
        *,
        checkpoint_id: str,
        skill: str,
        items: Mapping[int, Sequence[Any]],
    ) -> None:
        from realm_pipeline.simulation.hero import STATE_FILE, load_state

        self.model_dir = Path(model_dir)
        self.params, self.checkpoint_id, self.skill = params, checkpoint_id, skill
        try:
            self.state = load_state(self.model_dir)
            self.sha256 = hashlib.sha256((self.model_dir / STATE_FILE).read_bytes()).hexdigest()
        except (ValueError, OSError) as exc:
            raise BackendError(f"cannot load the checkpoint: {exc}") from exc
        self.tokenizer = _CharCounter()
        self.max_new_tokens = 0  # set per level by the scorer; a simulated answer needs no budget
        # the items it may be asked, by their key: (level, reference answer)
        self._items = {
            self.item_key(self.render(item.messages[:-1])): (level, item.answer)
            for level, level_items in items.items()
            for item in level_items
        }

    @staticmethod
    def item_key(prompt: str) -> str:
        """An item's stable key: a hash of its rendered prompt."""
        return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:32]

    def render(self, messages: Messages) -> str:
        """The messages in the character chat template's shape (role marker, content, end marker)."""
        return "".join(f"<|{m['role']}|>{m['content']}<|end|>" for m in messages) + "<|assistant|>"

    def complete(self, prompts: list[str]) -> list[str]:
        """The hero's answer to each prompt (one of the items it was given), in order."""
        from realm_pipeline.simulation.hero import answer

        outputs = []
        for prompt in prompts:
            key = self.item_key(prompt)
            if key not in self._items:
                raise BackendError(
                    f"simulated hero {self.checkpoint_id}: asked a prompt that is none of the {self.skill} "
                    f"items it was given ({prompt[:80]!r})"
                )
            level, reference = self._items[key]
            outputs.append(
                answer(self.params, self.state, self.checkpoint_id, self.skill, level, key, reference)
            )
        return outputs

    def describe(self) -> dict:
        """Kind and the simulator's constants (they decide every answer), and the state file's sha."""
        from realm_pipeline.simulation.hero import params_json

        return {"kind": self.kind, "params": params_json(self.params), "model_sha256": self.sha256}


def _wait_for_models(backend: OpenAICompatibleBackend, process: Any, timeout_s: float, command: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise ServedModelError(
                f"serve command exited with {process.returncode} before serving: {command}"
            )
        try:
            backend.served_models()
            return
        except ServedModelError:
            if time.monotonic() >= deadline:
                raise ServedModelError(
                    f"serve command did not answer {backend.base_url}/v1/models within {timeout_s:g} s: {command}"
                ) from None
            time.sleep(0.2)


@contextmanager
def served_checkpoint(
    hero_eval: HeroEval, backend: OpenAICompatibleBackend, checkpoint_id: str, checkpoint_dir: str | Path
) -> Iterator[OpenAICompatibleBackend]:
    """Put the checkpoint into the server (start `serve_command`, or POST `load_endpoint`), prove that
    `/v1/models` lists its name, yield the backend; a started server is stopped afterwards."""
    import httpx

    process = None
    fields = {"checkpoint": checkpoint_id, "checkpoint_dir": str(checkpoint_dir)}
    if hero_eval.serve_command:
        command = hero_eval.serve_command.format(**fields)
        process = subprocess.Popen(shlex.split(command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if process is not None:
            _wait_for_models(backend, process, hero_eval.startup_timeout_s, command)
        elif hero_eval.load_endpoint:  # vLLM's body for /v1/load_lora_adapter
            url = backend.base_url.removesuffix("/v1") + hero_eval.load_endpoint
            headers = {"Authorization": f"Bearer {backend.api_key}"} if backend.api_key else {}
            body = {"lora_name": checkpoint_id, "lora_path": str(checkpoint_dir)}
            try:
                resp = httpx.post(url, json=body, headers=headers, timeout=backend.timeout)
            except httpx.HTTPError as exc:
                raise ServedModelError(f"POST {url}: cannot load checkpoint {checkpoint_id}: {exc}") from exc
            if resp.status_code != 200:
                raise ServedModelError(
                    f"POST {url}: loading checkpoint {checkpoint_id} failed with HTTP {resp.status_code}: "
                    f"{resp.text[:300]}"
                )
        backend.prove_served()
        yield backend
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def build_backend(
    hero_eval: HeroEval,
    model_dir: str | Path,
    *,
    batch_size: int,
    max_new_tokens: int,
    device: str = "cpu",
    environ: Mapping[str, str] | None = None,
    checkpoint_id: str | None = None,
    simulated: Any = None,
    skill: str | None = None,
    items: Mapping[int, Sequence[Any]] | None = None,
) -> LocalBackend | OpenAICompatibleBackend | SimulatedBackend:
    """The backend a hero's `eval` config (settings.HeroEval) names, over checkpoint `model_dir`.

    The server backend renders prompts and sizes budgets with the checkpoint's own tokenizer, and reads
    its API key from the environment variable the config names (the key itself is never stored).
    With `simulated` (a simulated hero's SimParams), the simulated hero answers `items` of `skill`."""
    if simulated is not None:
        return SimulatedBackend(
            model_dir, simulated, checkpoint_id=checkpoint_id or "", skill=skill or "", items=items or {}
        )
    if hero_eval.backend == "local":
        return LocalBackend(model_dir, batch_size=batch_size, max_new_tokens=max_new_tokens, device=device)
    environ = os.environ if environ is None else environ
    api_key = None
    if hero_eval.api_key_env is not None:
        api_key = environ.get(hero_eval.api_key_env)
        if not api_key:
            raise BackendError(
                f"eval backend {hero_eval.base_url} (model {hero_eval.model}): the environment variable "
                f"{hero_eval.api_key_env} named by eval.api_key_env is not set"
            )
    return OpenAICompatibleBackend(
        hero_eval.base_url,
        # the served name is the checkpoint's: `served_checkpoint` proves the server serves that one
        checkpoint_id or hero_eval.model or "",
        max_new_tokens=max_new_tokens,
        timeout=hero_eval.timeout_s,
        api_key=api_key,
        concurrency=hero_eval.concurrency,
        tokenizer=str(model_dir),
    )
