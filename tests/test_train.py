import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import reverse_digits_pairs, toy_train_config

from training.checkpoint import model_state, read_checkpoint, save_checkpoint
from training.config import ModelConfig, TrainConfig
from training.errors import ConfigError
from training.export import load_run
from training.train import LAST, EpochTotals, TrainState, load_run_config, lr_at, train

ROOT = Path(__file__).resolve().parents[1]


def params(run_dir, name=LAST) -> dict[str, torch.Tensor]:
    return model_state(read_checkpoint(Path(run_dir) / name)[0])


def read_log(run_dir) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "log.jsonl").read_text().splitlines()]


def test_toy_task_is_learned_through_the_real_training_loop(toy_run):
    cfg, summary = toy_run
    translator, _, _ = load_run(cfg.run_dir, "last")
    pairs = reverse_digits_pairs(300, seed=99)
    out = translator.translate([en for en, _ in pairs], beam=1)
    exact = sum(o == zh for o, (_, zh) in zip(out, pairs)) / len(pairs)
    assert exact >= 0.95, f"exact match {exact:.1%}"
    print(
        f"toy task: {exact:.1%} exact match after {summary['seconds']:.1f} s of training"
    )  # a figure, not a gate
    losses = [h["train_loss"] for h in summary["history"]]
    assert losses[-1] < losses[0] / 10


def test_run_directory_holds_config_vocab_checkpoints_and_log(toy_run):
    cfg, summary = toy_run
    run = Path(cfg.run_dir)
    for name in (
        "train_config.json",
        "vocab_src.json",
        "vocab_tgt.json",
        "last.safetensors",
        "best.safetensors",
        "log.jsonl",
    ):
        assert (run / name).is_file(), name
    assert len(list(run.glob("epoch-*.safetensors"))) == min(cfg.keep_checkpoints, cfg.epochs)
    assert not list(run.glob("*.tmp"))
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(1, cfg.epochs + 1))
    assert all({"dev_bleu", "dev_chrf", "tokens_per_s", "train_loss"} <= set(r) for r in log)
    assert TrainConfig.from_dict(json.loads((run / "train_config.json").read_text())) == cfg


def test_resume_mid_epoch_ends_with_the_same_parameters(tmp_path):
    # dropout on, so the restored RNG state matters too
    common = dict(epochs=2, dropout=0.1, eval_max_sentences=10)
    full = toy_train_config(tmp_path / "a", **common)
    train(full)

    part = toy_train_config(tmp_path / "b", **common, max_steps=17)  # stops mid epoch 1
    first = train(part)
    assert first["steps"] == 17
    meta = read_checkpoint(Path(part.run_dir) / LAST)[1]["meta"]
    assert (meta["epoch"], meta["batch"]) == (0, 17)
    # As if a crash came after an epoch's log line was appended but before its checkpoint was saved.
    with open(Path(part.run_dir) / "log.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 1, "train_loss": 9.9}) + "\n")
    resumed = train(toy_train_config(tmp_path / "b", **common), resume=True)
    assert resumed["steps"] == read_checkpoint(Path(full.run_dir) / LAST)[1]["meta"]["step"]
    # One line per epoch, and the interrupted epoch's loss covers all its steps, as without the stop.
    full_log, part_log = read_log(full.run_dir), read_log(part.run_dir)
    assert [r["epoch"] for r in part_log] == [1, 2]
    assert [r["train_loss"] for r in part_log] == [r["train_loss"] for r in full_log]

    a, b = params(full.run_dir), params(part.run_dir)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_lr_schedule_warms_up_then_decays():
    cfg = TrainConfig(
        train_path="x", dev_path=None, run_dir="x", lr=1e-3, warmup_steps=100, schedule="inverse_sqrt"
    )
    assert lr_at(50, cfg, 1000) == pytest.approx(5e-4)
    assert lr_at(100, cfg, 1000) == pytest.approx(1e-3)
    assert lr_at(400, cfg, 1000) == pytest.approx(5e-4)  # inverse sqrt: halves at 4x warmup
    cos = TrainConfig(**{**cfg.__dict__, "schedule": "cosine", "min_lr_ratio": 0.1})
    assert lr_at(1000, cos, 1000) == pytest.approx(1e-4)
    assert lr_at(550, cos, 1000) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))


def test_checkpoint_write_failure_keeps_the_previous_file(tmp_path, monkeypatch):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    path = tmp_path / "last.safetensors"
    save_checkpoint(path, model, opt, {"step": 1})
    before = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("training.checkpoint.save_file", disk_full)
    with pytest.raises(OSError, match="previous checkpoint is intact"):
        save_checkpoint(path, model, opt, {"step": 2})
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_two_process_ddp_agrees_with_single_process_accumulation(tmp_path):
    """2 gloo processes × 1 batch per step == 1 process × 2 accumulated batches (same batches, dropout off)."""
    common = dict(epochs=1, max_steps=12, eval_max_sentences=5, keep_checkpoints=1)
    single = toy_train_config(tmp_path / "single", **common, accum_steps=2)
    train(single)

    ddp = toy_train_config(tmp_path / "ddp", **common)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "training",
        "train",
        "--train",
        ddp.train_path,
        "--dev",
        ddp.dev_path,
        "--run-dir",
        ddp.run_dir,
        "--epochs",
        "1",
        "--max-steps",
        "12",
        "--eval-max-sentences",
        "5",
        "--d-model",
        "64",
        "--heads",
        "4",
        "--d-ff",
        "128",
        "--encoder-layers",
        "2",
        "--decoder-layers",
        "2",
        "--dropout",
        "0",
        "--max-len",
        "32",
        "--subwords",
        "0",  # words, as the single-process run (TINY_RECIPE)
        "--concat",
        "0",
        "--min-freq-src",
        "1",
        "--max-tokens",
        "512",
        "--lr",
        "3e-3",
        "--warmup-steps",
        "60",
        "--schedule",
        "cosine",
        "--label-smoothing",
        "0",
        "--seed",
        "0",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "× 2 processes" in proc.stdout

    a, b = params(single.run_dir), params(ddp.run_dir)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-4, rtol=1e-3), k
    moved = params(single.run_dir)["tgt_embed.weight"]
    assert not torch.allclose(moved, torch.zeros_like(moved))


def test_bf16_autocast_path_trains(tmp_path):
    cfg = toy_train_config(tmp_path, epochs=3, precision="bf16", eval_max_sentences=5)
    summary = train(cfg)
    losses = [h["train_loss"] for h in summary["history"]]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0] / 2
    assert all(v.dtype == torch.float32 for v in params(cfg.run_dir).values())  # master weights stay fp32


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path):
    common = dict(epochs=3, dropout=0.1, eval_max_sentences=5)
    ref = toy_train_config(tmp_path / "ref", **common)
    train(ref)

    cfg = toy_train_config(tmp_path / "killed", **common, checkpoint_every=5)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg.to_dict()))
    script = (
        "import json, sys, torch; torch.set_num_threads(1); from training.config import TrainConfig; "
        "from training.train import train; train(TrainConfig.from_dict(json.load(open(sys.argv[1]))))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "cfg.json")],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    last = Path(cfg.run_dir) / LAST
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            if last.is_file():
                try:
                    if read_checkpoint(last)[1]["meta"]["step"] >= 20:
                        break
                except ValueError:
                    pass  # being replaced right now: os.replace makes that a brief window
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    meta = read_checkpoint(last)[1]["meta"]  # the newest checkpoint is whole
    assert meta["step"] >= 20 and meta["step"] % 5 == 0 or meta["batch"] == 0
    resumed = train(cfg, resume=True)
    assert resumed["steps"] == read_checkpoint(Path(ref.run_dir) / LAST)[1]["meta"]["step"]
    assert not list(Path(cfg.run_dir).glob("*.tmp"))
    a, b = params(ref.run_dir), params(cfg.run_dir)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_reading_a_checkpoint_while_it_is_being_replaced_sees_one_whole_file(tmp_path):
    """Checkpoints of two sizes replace each other as fast as possible while another thread reads:
    every read must give one whole checkpoint, never a mix of the two files. (A race: reading the path
    twice, as safe_open does, failed here in about half the runs.)"""
    path = tmp_path / "last.safetensors"
    model = torch.nn.Linear(4, 4)
    opt = torch.optim.AdamW(model.parameters())
    save_checkpoint(path, model, opt, {"step": 0, "note": ""})
    stop, errors, reads = threading.Event(), [], 0

    def writer():
        i = 0
        while not stop.is_set():
            i += 1
            save_checkpoint(
                path, model, opt, {"step": i, "note": "x" * (i % 2) * 9}
            )  # header size alternates

    t = threading.Thread(target=writer)
    t.start()
    try:
        deadline = time.time() + 3
        while time.time() < deadline:
            try:
                tensors, blob = read_checkpoint(path)
                assert torch.equal(tensors["model.weight"], model.weight.detach())
                reads += 1
            except Exception as e:  # noqa: BLE001  any failure is the bug
                errors.append(repr(e))
                break
    finally:
        stop.set()
        t.join()
    assert not errors, errors[0]
    assert reads > 10


# What the previous version of the loop wrote into a mid-epoch checkpoint's metadata (copied from one).
LEGACY_MID_EPOCH_META = {
    "step": 17,
    "epoch": 0,
    "batch": 17,
    "best_bleu": -1.0,
    "history": [],
    "hardware": "AMD EPYC, 1 thread(s), fp32",
    "partial": {"tokens": 6779, "loss_sum": 49.532869815826416, "loss_n": 17, "seconds": 3.436409878999939},
}


def test_train_state_reads_and_writes_the_checkpoint_layout_of_earlier_runs():
    state = TrainState.from_meta(LEGACY_MID_EPOCH_META)
    assert (state.step, state.epoch, state.epoch_step, state.best_bleu) == (17, 0, 17, -1.0)
    assert state.totals == EpochTotals(
        tokens=6779, loss_sum=49.532869815826416, loss_n=17, seconds=3.436409878999939
    )
    assert state.to_meta() == LEGACY_MID_EPOCH_META
    # At an epoch's end the earlier loop wrote no "partial"; nor does this one.
    history = [{"epoch": 1, "step": 41, "train_loss": 2.5}]
    end = {"step": 41, "epoch": 1, "batch": 0, "best_bleu": 3.5, "history": history, "hardware": "cpu"}
    assert TrainState.from_meta(end).to_meta() == end
    assert TrainState.from_meta(end).totals == EpochTotals()
    # Checkpoints older than the running totals and the hardware line still resume, with zero totals.
    old = {"step": 17, "epoch": 0, "batch": 17, "best_bleu": -1.0, "history": []}
    assert TrainState.from_meta(old) == TrainState(step=17, epoch_step=17)


def test_config_files_reject_unknown_keys_naming_them():
    saved = TrainConfig(train_path="t.tsv", dev_path=None, run_dir="r").to_dict()
    with pytest.raises(ConfigError, match="unknown TrainConfig field 'lr_peak'"):
        TrainConfig.from_dict({**saved, "lr_peak": 1e-3})
    with pytest.raises(ConfigError, match="unknown ModelConfig field 'bogus'"):
        ModelConfig.from_dict({"src_vocab_size": 10, "tgt_vocab_size": 10, "bogus": 1})
    with pytest.raises(ConfigError, match="lacks 'run_dir'"):
        TrainConfig.from_dict({k: v for k, v in saved.items() if k != "run_dir"})


def test_an_earlier_train_config_json_still_loads(tmp_path):
    # train_config.json as the version before subword pieces wrote it: flat, without "subwords" (nor
    # "init_from", "rdrop" and "concat", added later); those load as their defaults.
    old = {
        "train_path": "data/train.tsv",
        "dev_path": "data/dev.tsv",
        "run_dir": "runs/base",
        "d_model": 256,
        "n_heads": 4,
        "d_ff": 1024,
        "n_encoder_layers": 3,
        "n_decoder_layers": 3,
        "dropout": 0.1,
        "pre_norm": True,
        "max_len": 256,
        "min_freq_src": 2,
        "min_freq_tgt": 1,
        "lowercase": True,
        "max_tokens_per_sentence": 100,
        "epochs": 30,
        "max_tokens": 2500,
        "accum_steps": 1,
        "lr": 0.0007,
        "warmup_steps": 400,
        "schedule": "cosine",
        "min_lr_ratio": 0.0,
        "weight_decay": 0.0,
        "betas": [0.9, 0.98],
        "label_smoothing": 0.1,
        "clip_norm": 1.0,
        "max_steps": None,
        "eval_beam": 1,
        "eval_max_sentences": None,
        "checkpoint_every": None,
        "keep_checkpoints": 5,
        "seed": 1234,
        "device": "auto",
        "threads": 1,
        "precision": "bf16",
        "progress": False,
    }
    (tmp_path / "train_config.json").write_text(json.dumps(old))
    cfg = load_run_config(tmp_path)
    assert cfg.subwords == 0 and cfg.betas == (0.9, 0.98) and cfg.precision == "bf16"
    assert cfg.init_from is None and cfg.rdrop == 0.0
    written = {**old, "subwords": 0, "init_from": None, "rdrop": 0.0, "concat": 0.0}
    assert json.loads(json.dumps(cfg.to_dict())) == written  # written back flat, as before


def test_the_model_shape_comes_from_the_recipe_with_the_model_defaults():
    assert TrainConfig(train_path="t", dev_path=None, run_dir="r").model_config(10, 12, 0) == ModelConfig(
        src_vocab_size=10, tgt_vocab_size=12, pad_id=0
    )
    shape = dict(
        d_model=48,
        n_heads=8,
        d_ff=96,
        n_encoder_layers=1,
        n_decoder_layers=5,
        dropout=0.3,
        max_len=40,
        pre_norm=False,
    )  # none of them the default
    recipe = TrainConfig(train_path="t", dev_path=None, run_dir="r", **shape)
    assert recipe.model_config(10, 12, 1) == ModelConfig(
        src_vocab_size=10, tgt_vocab_size=12, pad_id=1, **shape
    )


def test_symmetric_kl_matches_torch_distributions_and_skips_padding():
    from training.text import PAD_ID
    from training.train import symmetric_kl

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 5, 7, generator=g), torch.randn(2, 5, 7, generator=g)
    target = torch.tensor([[3, 4, 5, PAD_ID, PAD_ID], [6, 7, 8, 9, 10]])
    pa, pb = torch.distributions.Categorical(logits=a), torch.distributions.Categorical(logits=b)
    both = (torch.distributions.kl_divergence(pa, pb) + torch.distributions.kl_divergence(pb, pa)) / 2
    assert symmetric_kl(a, b, target).item() == pytest.approx(both[target != PAD_ID].mean().item(), rel=1e-5)
    assert symmetric_kl(a, a, target).item() == pytest.approx(0.0, abs=1e-7)


def test_rdrop_without_dropout_is_plain_cross_entropy_and_with_dropout_adds_a_positive_kl(tiny_config):
    import dataclasses

    from training.data import collate, encode_pairs
    from training.model import Transformer
    from training.text import Vocab
    from training.train import batch_loss

    pairs = [(list("3141"), list("1413")), (list("27"), list("72")), (list("828"), list("828"))]
    vocab = Vocab.build((s for pair in pairs for s in pair), 1)
    batch = collate(encode_pairs(pairs, vocab, vocab, 30)[0])

    def loss_and_grads(dropout, rdrop):
        torch.manual_seed(0)
        model = Transformer(
            dataclasses.replace(
                tiny_config, dropout=dropout, src_vocab_size=len(vocab), tgt_vocab_size=len(vocab)
            )
        )
        cfg = TrainConfig(train_path="-", dev_path=None, run_dir="-", label_smoothing=0.1, rdrop=rdrop)
        loss, objective = batch_loss(model.train(), batch, cfg)
        objective.backward()
        return loss.item(), objective.item(), [p.grad.clone() for p in model.parameters()]

    plain, rdrop = loss_and_grads(0.0, 0.0), loss_and_grads(0.0, 5.0)
    # Without dropout both passes agree: the KL term is 0 and the gradients are plain training's.
    assert rdrop[1] == pytest.approx(plain[1], rel=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain[2], rdrop[2]))
    loss, objective, _ = loss_and_grads(0.3, 5.0)
    assert objective > loss
