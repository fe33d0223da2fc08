# tests/test_train.py — the training pipeline on a tiny corpus: corpus records are well formed, a
# 50-step run lowers the loss, a resumed run equals an uninterrupted one, the GPU preset runs a
# step on CPU, and fimd's logits for the exported GGUF equal the PyTorch forward pass.
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
import export  # noqa: E402
import prepare  # noqa: E402
import train  # noqa: E402
from model import Config, DeepSeek2  # noqa: E402

FIMD = os.environ.get("FIMD_BIN", os.path.join(ROOT, "build", "fimd"))
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def corpus_files():
    """Python's standard library, present wherever python3 is: a small mixed corpus."""
    root = "/usr/lib/python3.11"
    names = ["json/decoder.py", "json/encoder.py", "json/scanner.py", "textwrap.py", "bisect.py",
             "heapq.py", "colorsys.py", "shlex.py", "fnmatch.py", "graphlib.py", "glob.py", "queue.py"]
    return [os.path.join(root, n) for n in names if os.path.exists(os.path.join(root, n))]


def run_quiet(fn, argv):
    saved = sys.stderr
    sys.stderr = open(os.devnull, "w")
    try:
        return fn(argv)
    finally:
        sys.stderr.close()
        sys.stderr = saved


def test_corpus(tmp):
    out = os.path.join(tmp, "corpus")
    run_quiet(prepare.main, ["--fimd", FIMD, "--out", out, "--manifest", os.path.join(tmp, "m.json"),
                             "--files", *corpus_files(), "--vocab-size", "600", "--ctx", "64",
                             "--val-percent", "20", "--seed", "3"])
    c = train.Corpus(os.path.join(out, "corpus.bin"))
    sp = c.header["specials"]
    bos, eos, hole, begin, end = (sp[s] for s in prepare.SPECIALS)
    ids = np.asarray(c.train)
    check("corpus: training and validation splits are not empty",
          c.header["train_tokens"] > 1000 and c.header["val_tokens"] > 100)
    check("corpus: ids are inside the vocabulary", int(ids.max()) < c.n_vocab)
    starts = np.asarray(c.train_starts, dtype=np.int64)
    fim = [s for s in starts if ids[s] == bos and s + 1 < len(ids) and ids[s + 1] == begin]
    ok = len(fim) > 0
    for s in fim:  # BOS FIM_BEGIN prefix FIM_HOLE suffix FIM_END middle EOS, within ctx+1 tokens
        rec = ids[s: s + 65]
        e = np.nonzero(rec == eos)[0]
        if not len(e):
            ok = False
            break
        rec = rec[: e[0] + 1]
        h, n = np.nonzero(rec == hole)[0], np.nonzero(rec == end)[0]
        ok = ok and len(h) == 1 and len(n) == 1 and h[0] < n[0]
    check("corpus: FIM records in PSM order end with EOS within the context", ok, f"{len(fim)} records")
    check("corpus: both FIM and plain records", 0 < len(fim) < len(starts))
    return out


def test_training(tmp, corpus):
    cpath, vocab = os.path.join(corpus, "corpus.bin"), os.path.join(corpus, "vocab.gguf")
    run = os.path.join(tmp, "run")
    run_quiet(train.main, ["--corpus", cpath, "--out", run, "--preset", "test", "--threads", "2",
                           "--vocab", vocab])
    ck = torch.load(os.path.join(run, "ckpt.pt"))
    check("train: 50 steps lower the loss", ck["step"] == 50 and ck["last_loss"] < ck["first_loss"] - 0.5,
          f"{ck['first_loss']:.3f} -> {ck['last_loss']:.3f} after {ck['step']} steps")
    with open(os.path.join(run, "log.csv")) as f:
        rows = f.read().strip().split("\n")
    check("train: the validation curve is logged", rows[0].startswith("step,tokens") and len(rows) >= 3)

    # stopped after 20 steps and resumed: the same model as 50 steps in one go
    run2 = os.path.join(tmp, "run2")
    run_quiet(train.main, ["--corpus", cpath, "--out", run2, "--preset", "test", "--threads", "2", "--steps", "20"])
    run_quiet(train.main, ["--corpus", cpath, "--out", run2, "--preset", "test", "--threads", "2"])
    a = torch.load(os.path.join(run, "final.pt"))["model"]
    b = torch.load(os.path.join(run2, "final.pt"))["model"]
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    check("train: a resumed run equals an uninterrupted one", diff < 1e-5, f"max diff {diff}")

    # the GPU preset's code path, on CPU, for one small step (one thread: with two, another busy
    # process on these 2 cores once made this big model's step outlast the test's 15 minutes)
    run3 = os.path.join(tmp, "run3")
    try:
        run_quiet(train.main, ["--corpus", cpath, "--out", run3, "--preset", "gpu", "--device", "cpu",
                               "--steps", "1", "--batch", "1", "--micro", "1", "--threads", "1"])
        ck = torch.load(os.path.join(run3, "ckpt.pt"))
        check("train: --preset gpu runs on CPU (dry run)", ck["step"] == 1 and ck["config"]["n_ctx"] == 1024)
    except SystemExit as e:
        check("train: --preset gpu runs on CPU (dry run)", False, str(e))
    return run, vocab


def fimd_logits(gguf, ids):
    out = gguf + ".f32"
    subprocess.run([FIMD, "logits", "-m", gguf, "--tokens", " ".join(map(str, ids)), "-o", out], check=True)
    return np.fromfile(out, dtype=np.float32).reshape(len(ids), -1)


def test_export(tmp, run, vocab, corpus):
    model = export.load_checkpoint(os.path.join(run, "final.pt"))
    model.eval()
    gguf = os.path.join(tmp, "model-f32.gguf")
    export.export(model, vocab, gguf, "f32")
    c = train.Corpus(os.path.join(corpus, "corpus.bin"))
    ids = [int(x) for x in np.asarray(c.val[:48])]  # held-out tokens
    got = fimd_logits(gguf, ids)
    with torch.no_grad():
        ref = model(torch.tensor([ids]))[0][0].numpy()
    d = float(np.abs(got - ref).max())
    check("export: fimd's logits equal the PyTorch forward pass (F32)", d <= 1e-3, f"max |diff| {d}")
    check("export: the trained model is not trivially flat", float(ref.std()) > 0.1)

    # a random model with sharper weights exercises routing and attention harder
    cfg = Config(n_vocab=c.n_vocab, n_ctx=64, n_embd=32, n_layer=3, n_head=2, kv_lora_rank=16, qk_nope=8,
                 qk_rope=8, v_head=8, n_ff=64, n_dense=1, n_expert=4, n_expert_used=2, n_shared=1, n_ff_exp=16)
    m = DeepSeek2(cfg)
    m.reset_parameters(7)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(5) if p.dim() > 1 else p.add_(torch.randn(p.shape) * 0.1)
    gguf2 = os.path.join(tmp, "random.gguf")
    export.export(m, vocab, gguf2, "f32")
    got = fimd_logits(gguf2, ids)
    with torch.no_grad():
        ref = m(torch.tensor([ids]))[0][0].numpy()
    d = float(np.abs(got - ref).max())
    check("export: random deepseek2 (3 layers, MoE, MLA) matches fimd", d <= 1e-3, f"max |diff| {d}")

    gguf16 = os.path.join(tmp, "model-f16.gguf")
    export.export(model, vocab, gguf16, "f16")
    got = fimd_logits(gguf16, ids)
    with torch.no_grad():
        ref = model(torch.tensor([ids]))[0][0].numpy()
    agree = float((got.argmax(1) == ref.argmax(1)).mean())
    check("export: F16 file keeps the argmax", agree >= 0.9, f"argmax agreement {agree}")

    import gguf_io

    kv = set(gguf_io.read_kv(gguf16))
    need = LLAMA_REQUIRED | {"deepseek2.feed_forward_length", "deepseek2.attention.head_count",
                             "deepseek2.rope.dimension_count", "deepseek2.expert_count",
                             "deepseek2.expert_used_count", "deepseek2.attention.key_length_mla",
                             "deepseek2.attention.value_length_mla", "tokenizer.ggml.bos_token_id",
                             "tokenizer.ggml.eos_token_id"}
    check("export: every key llama.cpp's deepseek2 loader requires", need <= kv, str(need - kv))
    info = subprocess.run([FIMD, "info", "-m", gguf16], capture_output=True, text=True)
    check("export: fimd info reads the file", info.returncode == 0 and "deepseek2" in info.stdout)


LLAMA_REQUIRED = {  # what llama.cpp's deepseek2 loader throws without (for a shape not 26/27 layers)
    "general.architecture", "deepseek2.context_length", "deepseek2.embedding_length", "deepseek2.block_count",
    "deepseek2.attention.layer_norm_rms_epsilon", "deepseek2.attention.kv_lora_rank",
    "deepseek2.expert_feed_forward_length", "deepseek2.expert_shared_count", "deepseek2.attention.q_lora_rank",
    "tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
    "tokenizer.ggml.pre"}


def test_synth_keys(tmp):
    import gguf_io

    shape = ["--embd", "64", "--heads", "2", "--kv-lora", "16", "--qk-nope", "8", "--qk-rope", "8", "--v-head", "8",
             "--ff", "64", "--experts", "4", "--experts-used", "2", "--ff-exp", "16", "--type", "F32"]
    for layers, want in (("4", True), ("27", False)):
        out = os.path.join(tmp, f"lite{layers}.gguf")
        subprocess.run([FIMD, "synth", "--like", "lite", "--layers", layers, *shape, "-o", out], check=True)
        kv = gguf_io.read_kv(out)
        if want:
            missing = LLAMA_REQUIRED - set(kv)
            check("synth: a 4-layer Lite-like file carries every key llama.cpp requires (q_lora_rank = 0)",
                  not missing and kv["deepseek2.attention.q_lora_rank"].value == 0, str(missing))
        else:
            check("synth: a 27-layer Lite file omits q_lora_rank as the converter does",
                  "deepseek2.attention.q_lora_rank" not in kv)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        test_synth_keys(tmp)
        corpus = test_corpus(tmp)
        run, vocab = test_training(tmp, corpus)
        test_export(tmp, run, vocab, corpus)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
