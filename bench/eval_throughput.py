"""Eval throughput: the batched evaluator vs a one-item-at-a-time `model.generate` loop (both greedy).

Run: python bench/eval_throughput.py [--model-dir DIR] [--items 256] [--batch-size 64] [--threads 1]
     [--device cuda] [--json PATH]
Without --model-dir it saves a random tiny hero (DEFAULT_TINY_CONFIG, untied head so outputs vary) to a
temp dir. Items are BIN L1-L4 eval items, spread over the levels. Both sides score the same items from
the same checkpoint; the script prints items/s for each, the ratio, and how many outputs agree.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from realm_pipeline.evaluation.backends import LocalBackend, render  # noqa: E402
from realm_pipeline.evaluation.runner import evaluate_items  # noqa: E402
from realm_pipeline.skills import get_skill  # noqa: E402
from realm_pipeline.skills.heldout import eval_items  # noqa: E402


def bin_items(count: int) -> list:
    """`count` BIN eval items over levels 1-4, as evenly as each level's eval set allows."""
    skill = get_skill("bin")
    pools = [eval_items(skill, level, count) for level in (1, 2, 3, 4)]
    items, k = [], 0
    while len(items) < count and any(k < len(p) for p in pools):
        items += [p[k] for p in pools if k < len(p)]
        k += 1
    return items[:count]


def build_hero(directory: Path) -> Path:
    """Save a random tiny hero (default shape, untied head) and its tokenizer to `directory`."""
    from realm_pipeline.skills import CHARACTERS
    from realm_pipeline.training.hero import build_tiny_hero
    from realm_pipeline.training.tokenizer import build_char_tokenizer

    tokenizer = build_char_tokenizer(CHARACTERS)
    model = build_tiny_hero({"tie_word_embeddings": False}, tokenizer)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def sequential(
    model_dir: Path, items: list, max_new_tokens: int, device: str = "cpu"
) -> tuple[float, list[str], int, str]:
    """The naive loop: one `model.generate` per item, checkpoint dtype; (seconds, outputs, correct)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    skill = get_skill("bin")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True).to(device).eval()
    outputs, correct = [], 0
    start = time.perf_counter()
    with torch.inference_mode():
        for item in items:
            ids = tokenizer(
                render(tokenizer, item.messages[:-1]), add_special_tokens=False, return_tensors="pt"
            )["input_ids"].to(device)
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=max_new_tokens,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
            new = [t for t in out[0, ids.shape[1] :].tolist() if t != tokenizer.eos_token_id]
            text = tokenizer.decode(new, skip_special_tokens=True)
            outputs.append(text)
            correct += skill.score(item, text).correct
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return seconds, outputs, correct, str(next(model.parameters()).dtype).removeprefix("torch.")


def main(argv: list[str] | None = None) -> None:
    """Time both evaluators on the same checkpoint and items; print items/s and the speed-up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=8)  # BIN L4 answers: <= 6 chars + end
    parser.add_argument("--dtype", default="auto", help="batched decoding dtype (auto = float64 on CPU)")
    # Tiny heroes gain nothing from intra-op threads; on a shared 2-core box extra threads only thrash.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir or build_hero(Path(tmp))
        items = bin_items(args.items)
        levels = {lv: sum(i.level == lv for i in items) for lv in (1, 2, 3, 4)}
        print(
            f"checkpoint: {model_dir}  items: {len(items)} BIN {levels}  "
            f"max_new_tokens: {args.max_new_tokens}  threads: {args.threads}  device: {args.device}"
        )

        backend = LocalBackend(
            model_dir,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            dtype=args.dtype,
            device=args.device,
        )
        evaluate_items(backend, get_skill("bin"), items[: args.batch_size])  # warm-up (allocator, caches)
        batched = evaluate_items(backend, get_skill("bin"), items)
        rate = batched.n / batched.wall_s
        st = backend.last_stats
        print(
            f"batched    (batch {args.batch_size}, {st['dtype']}, tie margin {st['tie_margin']:g}): "
            f"{rate:8.1f} items/s  ({batched.wall_s:.2f} s, {batched.correct} correct, "
            f"{st['close_calls']} close calls re-decoded alone in float64)"
        )

        seq_s, seq_out, seq_correct, seq_dtype = sequential(
            model_dir, items, args.max_new_tokens, args.device
        )
        print(
            f"sequential (model.generate, 1 item at a time, {seq_dtype}): "
            f"{len(items) / seq_s:8.1f} items/s  ({seq_s:.2f} s, {seq_correct} correct)"
        )
        agree = sum(a == r[1] for a, r in zip(seq_out, batched.rows, strict=True))
        print(f"speed-up: {seq_s / batched.wall_s:.1f}x   outputs identical: {agree}/{len(items)}")
        if args.json:
            figures = {
                "device": args.device,
                "items": len(items),
                "batch_size": args.batch_size,
                "max_new_tokens": args.max_new_tokens,
                "batched_dtype": str(st["dtype"]),
                "batched_items_per_s": rate,
                "batched_correct": batched.correct,
                "sequential_dtype": seq_dtype,
                "sequential_items_per_s": len(items) / seq_s,
                "sequential_correct": seq_correct,
                "speedup": seq_s / batched.wall_s,
                "outputs_identical": agree,
            }
            args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
