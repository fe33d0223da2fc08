# tools/train/train.py — trains fimd's small deepseek2 code model on build/train/corpus.bin (the one
# file prepare.py writes), on CPU or CUDA, checkpointing every few minutes and resuming from the last
# checkpoint. Needs only PyTorch and numpy: `--preset gpu --device cuda` runs unchanged on a GPU box.
import argparse
import csv
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import Config, DeepSeek2  # noqa: E402

# Model shape and schedule per preset. "cpu" is sized for ~85 minutes of 2 cores (2.5M active
# parameters; the bundled model ran 10M tokens, then was resumed with --tokens 13500000); "gpu" is
# the ~30M-parameter model a longer run elsewhere trains; "test" is for unit tests.
PRESETS = {
    "cpu": dict(model=dict(n_ctx=256, n_embd=192, n_layer=4, n_head=4, kv_lora_rank=64, qk_nope=32,
                           qk_rope=16, v_head=32, n_ff=512, n_dense=1, n_expert=8, n_expert_used=2,
                           n_shared=1, n_ff_exp=128),
                batch=16, micro=4, lr=2e-3, tokens=10_000_000, warmup=200, eval_every=200,
                eval_windows=160),
    "gpu": dict(model=dict(n_ctx=1024, n_embd=512, n_layer=8, n_head=8, kv_lora_rank=128,
                           qk_nope=64, qk_rope=32, v_head=64, n_ff=1536, n_dense=1, n_expert=16,
                           n_expert_used=2, n_shared=1, n_ff_exp=256),
                batch=64, micro=16, lr=1.5e-3, tokens=2_000_000_000, warmup=1000, eval_every=500,
                eval_windows=400),
    "test": dict(model=dict(n_ctx=64, n_embd=32, n_layer=2, n_head=2, kv_lora_rank=16, qk_nope=8,
                            qk_rope=8, v_head=8, n_ff=64, n_dense=1, n_expert=4, n_expert_used=2,
                            n_shared=1, n_ff_exp=16),
                 batch=8, micro=4, lr=5e-3, tokens=50 * 8 * 64, warmup=5, eval_every=25,
                 eval_windows=8),
}
MAGIC = b"FIMDCORP"


def log(*a):
    print("train:", *a, file=sys.stderr, flush=True)


class Corpus:
    """Token ids and record starts of the training and validation splits (see prepare.py)."""

    def __init__(self, path):
        with open(path, "rb") as f:
            if f.read(8) != MAGIC:
                raise SystemExit(f"train: {path} is not a corpus written by prepare.py")
            (n,) = struct.unpack("<I", f.read(4))
            self.header = json.loads(f.read(n))
            off = 12 + n
        h = self.header
        arrays = []
        for count, dt in ((h["train_tokens"], np.uint16), (h["train_records"], np.uint32),
                          (h["val_tokens"], np.uint16), (h["val_records"], np.uint32)):
            off += -off % 8
            arrays.append(np.memmap(path, dtype=dt, mode="r", offset=off, shape=(count,)))
            off += count * np.dtype(dt).itemsize
        self.train, self.train_starts, self.val, self.val_starts = arrays
        self.token_bytes = np.array(h["token_bytes"], dtype=np.float64)
        self.n_vocab = h["n_vocab"]

    def windows(self, ids, starts, ctx):
        return starts[starts.astype(np.int64) + ctx + 1 <= len(ids)]

    def batch(self, split, idx, ctx):
        ids, starts = (self.train, self.train_starts) if split == "train" else (self.val, self.val_starts)
        starts = self.windows(ids, starts, ctx)
        rows = [np.asarray(ids[int(starts[i]): int(starts[i]) + ctx + 1], dtype=np.int64) for i in idx]
        return torch.from_numpy(np.stack(rows))


def lr_at(step, total, warmup, peak):
    if step < warmup:
        return peak * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def autocast(device):
    dt = torch.bfloat16
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=dt)


@torch.no_grad()
def evaluate(model, corpus, ctx, n_windows, device, batch):
    """Validation loss in nats per byte of text over fixed windows of the held-out files."""
    model.eval()
    starts = corpus.windows(corpus.val, corpus.val_starts, ctx)
    idx = np.linspace(0, len(starts) - 1, num=min(n_windows, len(starts))).astype(np.int64)
    nll, nbytes, ntok = 0.0, 0.0, 0
    for i in range(0, len(idx), batch):
        xy = corpus.batch("val", idx[i: i + batch], ctx).to(device)
        with autocast(device):
            logits, _ = model(xy[:, :-1])
        lp = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                               xy[:, 1:].reshape(-1), reduction="none")
        tb = torch.from_numpy(corpus.token_bytes).to(device)[xy[:, 1:].reshape(-1)]
        nll += float(lp[tb > 0].sum())  # control tokens carry no text: not part of nats/byte
        nbytes += float(tb.sum())
        ntok += int(lp.numel())
    model.train()
    return nll / max(nbytes, 1.0)


def save(path, state):
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)  # a run stopped mid-write keeps the previous checkpoint


def main(argv=None):
    ap = argparse.ArgumentParser(description="train fimd's deepseek2 code model")
    ap.add_argument("--corpus", default="build/train/corpus.bin")
    ap.add_argument("--out", default="build/train/run")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tokens", type=int, help="training tokens (default: the preset's)")
    ap.add_argument("--steps", type=int, help="stop after this many steps (dry runs)")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--micro", type=int, help="sequences per forward pass (default: the preset's)")
    ap.add_argument("--lr", type=float)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--checkpoint-minutes", type=float, default=3.0)
    ap.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    ap.add_argument("--vocab", help="vocabulary GGUF: export the result to OUT/model.gguf")
    a = ap.parse_args(argv)

    p = PRESETS[a.preset]
    batch, peak = a.batch or p["batch"], a.lr or p["lr"]
    micro = min(batch, a.micro or p["micro"])
    corpus = Corpus(a.corpus)
    cfg = Config(n_vocab=corpus.n_vocab, **p["model"])
    ctx = cfg.n_ctx
    total_steps = (a.tokens or p["tokens"]) // (batch * ctx)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    model = DeepSeek2(cfg)
    model.reset_parameters(a.seed)
    model.to(a.device)
    decay = [q for q in model.parameters() if q.dim() >= 2]
    other = [q for q in model.parameters() if q.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": other, "weight_decay": 0.0}], lr=peak, betas=(0.9, 0.95))
    ck_path, log_path = os.path.join(a.out, "ckpt.pt"), os.path.join(a.out, "log.csv")
    step, elapsed = 0, 0.0
    if os.path.exists(ck_path) and not a.fresh:
        ck = torch.load(ck_path, map_location=a.device)
        if ck["config"] != cfg.to_dict():
            raise SystemExit(f"train: {ck_path} holds another model shape; use --fresh or another --out")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, elapsed = ck["step"], ck["elapsed"]
        log(f"resumed at step {step} ({elapsed / 60:.1f} min trained)")
    elif os.path.exists(log_path):
        os.remove(log_path)
    total, active = model.n_params()
    log(f"preset {a.preset}: {total / 1e6:.2f}M parameters ({active / 1e6:.2f}M active), "
        f"{total_steps} steps of {batch}x{ctx} tokens on {a.device}")

    starts = corpus.windows(corpus.train, corpus.train_starts, ctx)
    last_ck, t0 = time.time(), time.time() - elapsed
    end = total_steps if a.steps is None else min(total_steps, step + a.steps)
    first_loss = None
    while step < end:
        rng = np.random.default_rng([a.seed, step])  # the batch depends only on seed and step
        xy = corpus.batch("train", rng.integers(0, len(starts), size=batch), ctx).to(a.device)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total_steps, p["warmup"], peak)
        # Micro-batches keep activations in cache on a CPU (4 sequences train ~30% faster per
        # token than 32 on 2 cores); gradients add up to the same step.
        loss_sum = 0.0
        for m0 in range(0, batch, micro):
            part = xy[m0: m0 + micro]
            with autocast(a.device):
                logits, aux = model(part[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, cfg.n_vocab),
                                                     part[:, 1:].reshape(-1))
            ((loss + 0.01 * aux) * (len(part) / batch)).backward()
            loss_sum += float(loss) * len(part) / batch
        loss = torch.tensor(loss_sum)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        first_loss = first_loss or float(loss)
        if step % p["eval_every"] == 0 or step == end:
            val = evaluate(model, corpus, ctx, p["eval_windows"], a.device, micro)
            el = time.time() - t0
            new = not os.path.exists(log_path)
            with open(log_path, "a", newline="") as f:
                w = csv.writer(f)
                if new:
                    w.writerow(["step", "tokens", "train_loss", "val_nats_per_byte", "minutes"])
                w.writerow([step, step * batch * ctx, f"{float(loss):.4f}", f"{val:.4f}", f"{el / 60:.2f}"])
            log(f"step {step}/{total_steps} loss {float(loss):.3f} val {val:.3f} nats/byte "
                f"{step * batch * ctx / el:.0f} tok/s")
        if time.time() - last_ck > a.checkpoint_minutes * 60 or step == end:
            save(ck_path, {"config": cfg.to_dict(), "model": model.state_dict(), "opt": opt.state_dict(),
                           "step": step, "elapsed": time.time() - t0, "first_loss": first_loss,
                           "last_loss": float(loss)})
            last_ck = time.time()
    if step >= total_steps:
        save(os.path.join(a.out, "final.pt"), {"config": cfg.to_dict(), "model": model.state_dict()})
        if a.vocab:
            from export import export

            export(model.cpu(), a.vocab, os.path.join(a.out, "model.gguf"), "f16")
            log(f"exported {os.path.join(a.out, 'model.gguf')}")


if __name__ == "__main__":
    main()
