"""Benchmarks that print figures (never timed assertions): python -m tests.benchmarks --help

Each comparison runs its two sides alternately in one process, so the ratio
holds even when the absolute numbers move with the machine's load.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from app_process import AppProcess, proc_status_mb  # noqa: E402

from explorer.ablation import ablate, head_importance  # noqa: E402
from explorer.inference import mask_heads, prepare, trace, trust_checks  # noqa: E402
from tests.benchmarks.browser import CHROMIUM, bench_browser  # noqa: E402
from training.config import ModelConfig  # noqa: E402
from training.data import collate, encode_pairs, make_batches, pad, read_tsv, tokenize_pairs  # noqa: E402
from training.decoding import DecodeSettings, decode, next_token_logprobs  # noqa: E402
from training.model import Transformer  # noqa: E402
from training.text import PAD_ID  # noqa: E402
from training.train import cpu_name, loss_fn  # noqa: E402
from training.translator import Translator, load_weights_dir  # noqa: E402

DEV = ROOT.parent / "shared" / "data" / "tatoeba-cmn-eng" / "dev.tsv"
WORDS = (
    "the old man saw a small dog near the river and my sister said that she would come to "
    "our house tomorrow because it is going to rain all day in the city where we live"
).split()


def machine() -> str:
    return f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} torch thread(s)"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def sentence(n_words: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(n_words)).capitalize() + "."


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def weight_reads(model: Transformer):
    """What a cached greedy step cannot avoid: one vector times every decoder weight matrix and the output
    embedding (25 products for 3 layers). On a CPU whose caches do not hold the weights this is bound by
    memory bandwidth, and it is shared by the uncached path, which bounds the cached/uncached ratio."""
    mats = [
        (lin.weight, lin.bias)
        for layer in model.decoder
        for lin in (
            layer.self_attn.q_proj,
            layer.self_attn.k_proj,
            layer.self_attn.v_proj,
            layer.self_attn.out_proj,
            layer.cross_attn.q_proj,
            layer.cross_attn.out_proj,
            layer.ff.fc1,
            layer.ff.fc2,
        )
    ]
    mats.append((model.tgt_embed.weight, model.output_bias))
    xs = [torch.randn(1, w.size(1)) for w, _ in mats]

    @torch.inference_mode()
    def read() -> None:
        for (w, b), x in zip(mats, xs):
            F.linear(x, w, b)

    return read, len(mats)


def bench_decoding(tr: Translator, repeats: int, lengths=(5, 15, 30)) -> None:
    print("\n1. translate latency, KV cache vs none (ms; same outputs)")
    print(
        f"   {'words':>5} {'search':>7} {'cached p50':>10} {'p95':>7} {'uncached p50':>12} {'p95':>7} {'speed-up':>8} {'out tok':>7}"
    )
    read, n_products = weight_reads(tr.model)
    floors = []
    for n in lengths:
        src = pad([tr.prepare(sentence(n)).ids])
        for beam in (1, 4):
            s = DecodeSettings(beam=beam, length_penalty=tr.decoding.length_penalty)
            out_len = len(decode(tr.model, src, s)[0].ids)
            cached, uncached, reads = [], [], []
            for _ in range(repeats):  # alternate, so load affects both sides alike
                # Called at once, inside this iteration: binding src and s late is what is meant.
                cached += timed(lambda: decode(tr.model, src, s, use_cache=True), 1)  # noqa: B023
                uncached += timed(lambda: decode(tr.model, src, s, use_cache=False), 1)  # noqa: B023
                if beam == 1:
                    reads += timed(read, 1)
            name = "greedy" if beam == 1 else f"beam {beam}"
            print(
                f"   {n:>5} {name:>7} {pct(cached, 50):>10.1f} {pct(cached, 95):>7.1f} {pct(uncached, 50):>12.1f} "
                f"{pct(uncached, 95):>7.1f} {pct(uncached, 50) / pct(cached, 50):>7.1f}x {out_len:>7}"
            )
            if beam == 1:
                steps = out_len + 1  # </s> is a step too
                floors.append((n, steps, pct(cached, 50) / steps, pct(reads, 50), pct(uncached, 50)))
    print(
        f"   where a greedy step's time goes: its {n_products} weight matrix–vector products alone, timed between the runs"
    )
    for n, steps, step_ms, read_ms, unc in floors:
        print(
            f"   {n:>5} words: cached {step_ms:.2f} ms/step, of which weight reads {read_ms:.2f} ms; a step that did "
            f"nothing else would give at most {unc / (steps * read_ms):.1f}x over uncached"
        )


def bench_trace(tr: Translator, repeats: int) -> None:
    from explorer.views import View, attention_view

    text = sentence(12)
    trace(tr, text)  # warm-up
    times = timed(lambda: trace(tr, text), repeats)
    t = trace(tr, text)
    render = timed(lambda: attention_view(t, View(kind="decoder")).to_json(), repeats)
    print(
        f"\n2. explorer trace (translate + every attention map), 12 words, default decoding (beam {tr.decoding.beam}):"
        f" p50 {pct(times, 50):.1f} ms, p95 {pct(times, 95):.1f} ms"
    )
    print(
        f"   re-render after a toggle (all layers × heads figure + JSON): p50 {pct(render, 50):.1f} ms, "
        f"p95 {pct(render, 95):.1f} ms"
    )


def bench_inside_a_head(tr: Translator, repeats: int, head: tuple[str, int, int] = ("cross", 1, 0)) -> None:
    """What "Inside a head" adds: internals on a trace, an ablated re-translation, the head-importance map."""
    import json

    text = sentence(12)
    trace(tr, text, internals=True)  # warm-up
    plain, inside, plain_json, inside_json = [], [], [], []
    for _ in range(repeats):  # alternate, so load affects both sides alike
        plain += timed(lambda: trace(tr, text), 1)
        inside += timed(lambda: trace(tr, text, internals=True), 1)
    t_plain, t_inside = trace(tr, text), trace(tr, text, internals=True)
    for _ in range(repeats):
        plain_json += timed(lambda: json.dumps(t_plain.to_json()), 1)
        inside_json += timed(lambda: json.dumps(t_inside.to_json()), 1)
    size = lambda t: len(json.dumps(t.to_json())) / 1e6
    print(f"\n6. inside a head, 12 words, default decoding (beam {tr.decoding.beam}):")
    print(
        f"   trace p50 {pct(plain, 50):.1f} ms without internals, {pct(inside, 50):.1f} ms with "
        f"(+{pct(inside, 50) - pct(plain, 50):.1f} ms); p95 {pct(plain, 95):.1f} / {pct(inside, 95):.1f} ms"
    )
    print(
        f"   its JSON: {size(t_plain):.2f} MB in {pct(plain_json, 50):.1f} ms without internals, "
        f"{size(t_inside):.2f} MB in {pct(inside_json, 50):.1f} ms with (p50)"
    )
    c = t_plain.checks
    translation = tr.decode([prepare(tr, text)[1]])[0]
    logits, maps = tr.forward_pass(translation, "weights")

    def checks() -> None:  # what the checks add to every trace: a fused pass, then the measurements
        fused, _ = tr.forward_pass(translation, "none")
        trust_checks(translation, maps, logits, fused, next_token_logprobs(logits))

    check_ms = timed(checks, repeats)
    print(
        f"   trust checks: p50 {pct(check_ms, 50):.1f} ms of every trace; on this one: row sums off by "
        f"{c.row_sum_error:.1e}, masked weight {c.masked_weight}, capture vs fused logits {c.capture_logit_diff:.1e}, "
        f"cached vs teacher-forced {c.cached_vs_teacher_forced:.1e}"
    )

    _, source, _ = prepare(tr, text)
    mask = mask_heads(tr, [head])
    tr.decode([source], head_mask=mask)  # warm-up
    plain_decode, redecode, whole = [], [], []
    for _ in range(repeats):  # alternate, so load affects all three alike
        plain_decode += timed(lambda: tr.decode([source]), 1)
        redecode += timed(lambda: tr.decode([source], head_mask=mask), 1)
        whole += timed(lambda: ablate(tr, text, [head]), 1)
    out = ablate(tr, text, [head])
    n_plain, n_ablated = (
        len(tr.decode([source])[0].tokens),
        len(tr.decode([source], head_mask=mask)[0].tokens),
    )
    print(
        f"   ablated re-translation ({head[0]} layer {head[1]} head {head[2]} off): p50 {pct(redecode, 50):.1f} ms, "
        f"p95 {pct(redecode, 95):.1f} ms ({n_ablated} output tokens); the same translation with every head on: "
        f"p50 {pct(plain_decode, 50):.1f} ms ({n_plain} tokens)"
    )
    print(
        f"   ablate() in all (both translations + two teacher-forced passes): p50 {pct(whole, 50):.1f} ms, "
        f"p95 {pct(whole, 95):.1f} ms  [total Δ log p of the translation {sum(out['delta_logprob']):+.2f}]"
    )

    cfg = tr.model.cfg
    n = (cfg.n_encoder_layers + 2 * cfg.n_decoder_layers) * cfg.n_heads
    head_importance(tr, text)  # warm-up
    imp = timed(lambda: head_importance(tr, text), max(2, repeats // 4))
    print(
        f"   head importance, all {n} heads (translate + {n} ablations batched): p50 {pct(imp, 50):.0f} ms, "
        f"max {max(imp):.0f} ms"
    )


def bench_contributions(tr: Translator, repeats: int, n_sentences: int) -> None:
    """What `trace --contributions` adds to a trace's JSON, and the faithfulness measurement's speed."""
    import json

    from explorer.contributions import contributions, trace_json_with_contributions
    from training.faithfulness import faithfulness

    text = sentence(12)
    plain_json = lambda: json.dumps(trace(tr, text).to_json())
    with_contributions = lambda: json.dumps(
        trace_json_with_contributions(trace(tr, text, internals=True), tr)
    )
    with_contributions()  # warm-up
    plain, more = [], []
    for _ in range(repeats):  # alternate, so load affects both sides alike
        plain += timed(plain_json, 1)
        more += timed(with_contributions, 1)
    t = trace(tr, text, internals=True)
    alone = timed(lambda: contributions(t, tr), repeats)
    print(f"\n7. contributions and faithfulness, 12 words, default decoding (beam {tr.decoding.beam}):")
    print(
        f"   trace JSON p50 {pct(plain, 50):.1f} ms, with --contributions {pct(more, 50):.1f} ms "
        f"(+{pct(more, 50) - pct(plain, 50):.1f} ms; goal ≤ 30); contributions() alone p50 {pct(alone, 50):.1f} ms"
    )
    texts = (
        [en for en, _ in read_tsv(DEV).pairs] if DEV.is_file() else [sentence(4 + i % 12) for i in range(200)]
    )
    texts = texts[:n_sentences]
    t0 = time.perf_counter()
    faithfulness(tr, texts)
    secs = time.perf_counter() - t0
    print(
        f"   faithfulness: {len(texts)} {'dev' if DEV.is_file() else 'synthetic'} sentences in {secs:.1f} s = "
        f"{secs * 200 / len(texts):.1f} s per 200 sentences (goal ≤ 180)"
    )


class TorchTransformer(nn.Module):
    """The reference: torch.nn.Transformer of the same shape, with the same embeddings and tied output."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.src_embed = nn.Embedding(cfg.src_vocab_size, cfg.d_model, padding_idx=PAD_ID)
        self.tgt_embed = nn.Embedding(cfg.tgt_vocab_size, cfg.d_model, padding_idx=PAD_ID)
        self.register_buffer("pos", Transformer(cfg).pos_enc, persistent=False)
        self.core = nn.Transformer(
            cfg.d_model,
            cfg.n_heads,
            cfg.n_encoder_layers,
            cfg.n_decoder_layers,
            cfg.d_ff,
            cfg.dropout,
            batch_first=True,
            norm_first=cfg.pre_norm,
        )
        self.bias = nn.Parameter(torch.zeros(cfg.tgt_vocab_size))

    def forward(self, src, tgt):
        scale = self.cfg.d_model**0.5
        s = self.src_embed(src) * scale + self.pos[: src.size(1)]
        t = self.tgt_embed(tgt) * scale + self.pos[: tgt.size(1)]
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.size(1), dtype=torch.bool)
        h = self.core(
            s,
            t,
            tgt_mask=causal,
            src_key_padding_mask=src == PAD_ID,
            tgt_key_padding_mask=tgt == PAD_ID,
            memory_key_padding_mask=src == PAD_ID,
            tgt_is_causal=True,
        )
        return F.linear(h, self.tgt_embed.weight, self.bias), None


def bench_training(batches, cfg: ModelConfig, steps: int) -> None:
    print(
        f"\n3. training throughput, target tokens/s ({steps} steps each, same batches, dropout {cfg.dropout})"
    )
    torch.manual_seed(0)
    variants = {
        "ours (fused SDPA)": (Transformer(cfg), {}),
        "ours, weights materialized": (Transformer(cfg), {"return_attention": True}),
        "torch.nn.Transformer": (TorchTransformer(cfg), {}),
    }
    if _cpu_has_bf16() or torch.cuda.is_available():
        variants["ours, bf16 autocast"] = (Transformer(cfg), {"bf16": True})
    results = {k: [0, 0.0] for k in variants}
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4) for k, (m, _) in variants.items()}
    for i in range(steps + 1):
        b = batches[i % len(batches)]
        for name, (model, kw) in variants.items():  # alternate models step by step
            model.train()
            t0 = time.perf_counter()
            kw = dict(kw)
            bf16 = kw.pop("bf16", False)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits, _ = model(b.src, b.tgt_in, **kw)
                loss = loss_fn(logits, b.tgt_out, 0.1)
            loss.backward()
            opts[name].step()
            opts[name].zero_grad(set_to_none=True)
            if i:  # the first step warms up
                results[name][0] += b.n_target_tokens
                results[name][1] += time.perf_counter() - t0
    base = results["torch.nn.Transformer"][0] / results["torch.nn.Transformer"][1]
    for name, (tokens, secs) in results.items():
        print(
            f"   {name:<28} {tokens / secs:>9,.0f} tok/s   {tokens / secs / base:>5.2f}x torch.nn.Transformer"
        )


def _cpu_has_bf16() -> bool:
    with contextlib.suppress(OSError):
        return (
            "avx512_bf16" in Path("/proc/cpuinfo").read_text()
            or "amx_bf16" in Path("/proc/cpuinfo").read_text()
        )
    return False


def bench_cold_start(weights: str) -> None:
    from gradio_client import Client

    app = AppProcess(["--weights", weights])
    try:
        up = app.wait()
        Client(app.url, verbose=False).predict("I love you.", 4, api_name="/translate")
        first = time.perf_counter() - app.started
        rss = proc_status_mb(app.proc.pid, "VmHWM")
    finally:
        app.stop()
    print(
        f"\n4. app cold start: page served after {up:.2f} s, first translation after {first:.2f} s; "
        f"peak RSS {rss:.0f} MB"
    )


def bench_batch_cli(weights: str, n: int) -> None:
    lines = (
        [en for en, _ in read_tsv(DEV).pairs] if DEV.is_file() else [sentence(5 + i % 20) for i in range(n)]
    )
    lines = (lines * (n // max(1, len(lines)) + 1))[:n]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    t0 = time.perf_counter()
    with open(f.name) as stdin:
        proc = subprocess.run(
            [sys.executable, "-m", "explorer", "translate", "--weights", weights, "--quiet"],
            stdin=stdin,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
    secs = time.perf_counter() - t0
    os.unlink(f.name)
    ok = proc.returncode == 0 and proc.stdout.count("\n") == n
    print(
        f"\n5. batch translation CLI: {n} sentences in {secs:.1f} s (process start included) = {n / secs:.1f} "
        f"sentences/s{'' if ok else '  [FAILED: ' + proc.stderr[-200:] + ']'}"
    )


def synthetic_weights(tmp: Path) -> str:
    """A default-shaped, untrained model with the real vocabulary sizes (speed does not depend on training)."""
    from safetensors.torch import save_model

    from training.config import write_json
    from training.text import SPECIALS, Vocab

    cfg = ModelConfig(src_vocab_size=4456, tgt_vocab_size=2855)
    torch.manual_seed(0)
    model = Transformer(cfg)
    save_model(model, str(tmp / "model.safetensors"))
    write_json(
        tmp / "config.json",
        {
            "model": cfg.to_dict(),
            "tokenizer": {"lowercase": True},
            "decoding": {"beam": 4, "length_penalty": 0.6},
        },
    )
    Vocab(list(SPECIALS) + [f"w{i}" for i in range(4452)]).save(tmp / "vocab_src.json")
    Vocab(list(SPECIALS) + [chr(0x4E00 + i) for i in range(2851)]).save(tmp / "vocab_tgt.json")
    return str(tmp)


def training_batches(tr: Translator, n: int):
    if DEV.is_file():
        pairs = read_tsv(DEV).pairs
    else:
        pairs = [(sentence(4 + i % 12), "我" * (5 + i % 14)) for i in range(600)]
    tok = tokenize_pairs(pairs, True)
    examples, _ = encode_pairs(tok, tr.src_vocab, tr.tgt_vocab, 100)
    idx = make_batches(examples, 2500, seed=0)[:n]
    return [collate([examples[i] for i in b]) for b in idx]


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--weights",
        help="weights folder (default: weights/ if it holds a model, else an untrained "
        "default-shaped model; translation latency depends on output length; "
        "with --browser, what app.py gets, whose default is weights/)",
    )
    p.add_argument(
        "--quick", action="store_true", help="few repetitions, small sizes: what CI runs so this cannot rot"
    )
    p.add_argument(
        "--threads", type=int, help="torch threads (default: 1; with --browser, the app's own default)"
    )
    browser = p.add_argument_group(
        "browser",
        "--browser runs only the browser benchmark: the app in headless Chromium, each action timed "
        "from its input event to the first frame that shows the new plot",
    )
    browser.add_argument(
        "--browser",
        action="store_true",
        help="start `python app.py` (with --weights/--threads if given) and time Translate, a layer, "
        "kind and head toggle and a step-slider move in Chromium at 1400x1000",
    )
    browser.add_argument(
        "--url",
        action="append",
        metavar="URL",
        help="measure the app already running at URL instead of starting one; give it twice (an "
        "older checkout's app, then this one's) to compare: each repetition then samples both, "
        "so load changes hit both alike; --weights and --threads then do nothing",
    )
    browser.add_argument(
        "--repeats",
        type=int,
        metavar="N",
        help="timed repetitions of each action (default: 10, or 2 with --quick); p95 of 10 is the slowest",
    )
    browser.add_argument(
        "--json", metavar="PATH", help="also write every sample and the summary to PATH as JSON"
    )
    browser.add_argument(
        "--chromium", default=CHROMIUM, metavar="PATH", help=f"the browser (default: {CHROMIUM})"
    )
    args = p.parse_args()
    if args.browser:
        app_args = (["--weights", args.weights] if args.weights else []) + (
            ["--threads", str(args.threads)] if args.threads else []
        )
        repeats = args.repeats or (2 if args.quick else 10)
        # --quick skips the warm-up: it only checks that every action still works.
        bench_browser(
            args.url, app_args, repeats, warmup=not args.quick, chromium=args.chromium, json_path=args.json
        )
        return
    if args.url or args.repeats or args.json:
        p.error("--url, --repeats and --json go with --browser")
    torch.set_num_threads(args.threads or 1)
    weights = args.weights
    tmp = Path(tempfile.mkdtemp())
    if weights is None:
        weights = (
            str(ROOT / "weights") if (ROOT / "weights" / "config.json").is_file() else synthetic_weights(tmp)
        )
    tr = load_weights_dir(weights)
    print(
        f"machine: {machine()}\nweights: {weights} ({tr.model.num_parameters():,} parameters)"
        f"{'  [quick mode]' if args.quick else ''}"
    )
    reps = 3 if args.quick else 20
    bench_decoding(tr, reps, lengths=(5, 15) if args.quick else (5, 15, 30))
    bench_trace(tr, reps)
    bench_training(training_batches(tr, 4 if args.quick else 12), tr.model.cfg, 3 if args.quick else 12)
    bench_cold_start(weights)
    bench_batch_cli(weights, 50 if args.quick else 1000)
    bench_inside_a_head(tr, reps)
    bench_contributions(tr, reps, 5 if args.quick else 200)


if __name__ == "__main__":
    main()
