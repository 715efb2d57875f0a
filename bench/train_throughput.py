"""Non-padding tokens/s of realm's packed `train_segment` vs a plain padded `transformers.Trainer`.

Usage: python bench/train_throughput.py [--steps 40 --batch-size 8]
       python bench/train_throughput.py --device cuda --model qwen3-0.6b-shaped --peak-tflops 989
--json PATH also writes the figures as JSON (bench/gpu_check.py reads them).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realm_pipeline.training.hero import DEFAULT_TINY_CONFIG, QWEN3_06B_SHAPE  # noqa: E402

MIX = [("bin", 1, 1.0), ("bin", 2, 1.0), ("bin", 3, 1.0), ("bin", 4, 1.0)]


def _model_config(name: str) -> dict:
    if name == "tiny":
        return dict(DEFAULT_TINY_CONFIG)
    if name == "qwen3-0.6b-shaped":
        return dict(QWEN3_06B_SHAPE)
    raise SystemExit(f"unknown --model {name!r}")


def bench_realm(args: argparse.Namespace, cfg: dict, workdir: Path) -> dict:
    """Run realm's segment trainer; tokens/s counts step time only (the final save is excluded)."""
    from realm_pipeline.training.trainer import SegmentSpec, train_segment

    spec = SegmentSpec(
        output_dir=str(workdir / "realm"),
        base={"tiny": cfg},
        lr=args.lr,
        batch_size=args.batch_size,
        max_length=args.max_length,
        steps=args.steps,
        save_every=0,
        seed=1,
        mix=MIX,
        device=args.device,
        dtype="bfloat16" if args.device == "cuda" else "float32",
        warmup_steps=0,
    )
    t0 = time.perf_counter()
    r = train_segment(spec)
    return {
        "tokens": r.tokens,
        "tokens_per_s": r.tokens_per_s,
        "wall_s": time.perf_counter() - t0,
        "peak_memory_bytes": r.peak_memory_bytes,
    }


def bench_hf(args: argparse.Namespace, cfg: dict, workdir: Path) -> dict:
    """Run a stock Trainer on the same example stream: padding to longest, no packing, no length grouping."""
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments
    from transformers.utils import logging as hf_logging

    from realm_pipeline.skills import CHARACTERS
    from realm_pipeline.training.data import ExampleEncoder, MixStream, Source
    from realm_pipeline.training.hero import build_tiny_hero
    from realm_pipeline.training.tokenizer import build_char_tokenizer

    hf_logging.set_verbosity_error()
    torch.manual_seed(1)
    tok = build_char_tokenizer(CHARACTERS)
    model = build_tiny_hero(cfg, tok)
    stream = MixStream([Source(w, skill=s, level=lv) for s, lv, w in MIX], 1, ExampleEncoder(tok))
    n = args.steps * args.batch_size
    rows = [dict(zip(("input_ids", "labels"), stream.consume(), strict=True)) for _ in range(n)]
    for r in rows:
        r["attention_mask"] = [1] * len(r["input_ids"])
    tokens = sum(len(r["input_ids"]) for r in rows)
    targs = TrainingArguments(
        output_dir=str(workdir / "hf"),
        per_device_train_batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=args.lr,
        lr_scheduler_type="cosine",
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=args.device == "cpu",
        bf16=args.device == "cuda",
        dataloader_num_workers=0,
        seed=1,
    )
    collator = DataCollatorForSeq2Seq(tok, padding="longest", label_pad_token_id=-100)
    trainer = Trainer(model=model, args=targs, train_dataset=rows, data_collator=collator)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    out = trainer.train()
    wall = time.perf_counter() - t0
    runtime = out.metrics.get("train_runtime", wall)
    return {"tokens": tokens, "tokens_per_s": tokens / runtime, "wall_s": wall}


def main(argv: list[str] | None = None) -> None:
    """Run both trainers and print tokens/s and the realm/HF ratio (and MFU on CUDA)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--model", default="tiny", help="tiny | qwen3-0.6b-shaped (random weights)")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--max-length", type=int, default=None, help="realm's packed row length (default: what the mix needs)"
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument(
        "--peak-tflops", type=float, default=989.0, help="accelerator peak (H100 and H200 bf16 dense: 989)"
    )
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    if args.max_length is None:  # the row the campaign would plan for MIX (BIN v4 L1-L4: 561 tokens)
        from realm_pipeline.lm.budgets import segment_max_length
        from realm_pipeline.skills import get_skill

        levels = [(get_skill(skill), level, 50) for skill, level, _ in MIX]
        args.max_length = segment_max_length("char", levels, ceiling=4096)

    cfg = _model_config(args.model)
    # Shared CPUs are noisy: alternate the two trainers and keep each one's best run.
    realm_runs, hf_runs = [], []
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            realm_runs.append(bench_realm(args, cfg, Path(tmp) / str(i)))
            hf_runs.append(bench_hf(args, cfg, Path(tmp) / str(i)))
    realm = max(realm_runs, key=lambda r: r["tokens_per_s"])
    hf = max(hf_runs, key=lambda r: r["tokens_per_s"])
    print(
        f"model={args.model} device={args.device} batch_size={args.batch_size} steps={args.steps} "
        f"realm_max_length={args.max_length} best of {args.repeats}"
    )
    print("realm tok/s per run:", [round(r["tokens_per_s"]) for r in realm_runs])
    print("hf    tok/s per run:", [round(r["tokens_per_s"]) for r in hf_runs])
    for name, r in (("realm", realm), ("hf", hf)):
        tps, wall = r["tokens_per_s"], r["wall_s"]
        print(f"{name:<6}: {r['tokens']:>9d} tokens  {tps:>10.0f} tok/s  (wall {wall:.1f}s)")
    ratio = realm["tokens_per_s"] / hf["tokens_per_s"]
    print(f"ratio realm/hf tokens/s: {ratio:.2f}x")
    figures = {
        "model": args.model,
        "device": args.device,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "max_length": args.max_length,
        "realm": realm,
        "hf": hf,
        "ratio": ratio,
    }
    if args.device == "cuda":
        params = _param_count(cfg)
        figures.update(params=params, peak_tflops=args.peak_tflops)
        for name, r in (("realm", realm), ("hf", hf)):
            # 6 FLOPs per parameter per trained token (forward 2, backward 4); attention's own FLOPs left out.
            mfu = 6 * params * r["tokens_per_s"] / (args.peak_tflops * 1e12)
            figures[f"{name}_mfu"] = mfu
            print(f"{name} MFU: {mfu:.1%} ({params / 1e6:.0f}M params, peak {args.peak_tflops:g} TFLOP/s)")
        print(f"realm peak memory: {realm['peak_memory_bytes'] / 2**30:.2f} GiB")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


def _param_count(cfg: dict) -> int:
    """Parameters of the hero `cfg` builds, counted on the meta device (nothing is allocated)."""
    import torch

    from realm_pipeline.skills import CHARACTERS
    from realm_pipeline.training.hero import build_tiny_hero
    from realm_pipeline.training.tokenizer import build_char_tokenizer

    with torch.device("meta"):
        model = build_tiny_hero(cfg, build_char_tokenizer(CHARACTERS))
    return sum(t.numel() for t in model.parameters())


if __name__ == "__main__":
    main()
