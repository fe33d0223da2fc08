# tools/train/export.py — writes a trained checkpoint as a deepseek2 GGUF that fimd and llama.cpp
# load: the MLA split of kv_b into attn_k_b/attn_v_b as the current converter does, every key the
# llama.cpp deepseek2 loader requires, and the vocabulary copied from the tokenizer's GGUF.
import argparse
import sys

import numpy as np
import torch

import gguf_io as G
from model import Config, DeepSeek2


def _u32(v):
    return G.Value(G.U32, int(v))


def _f32(v):
    return G.Value(G.F32, float(v))


def _str(v):
    return G.Value(G.STR, v)


def hparam_kv(cfg, name):
    A = "deepseek2."
    return [
        ("general.architecture", _str("deepseek2")),
        ("general.name", _str(name)),
        (A + "context_length", _u32(cfg.n_ctx)),
        (A + "embedding_length", _u32(cfg.n_embd)),
        (A + "block_count", _u32(cfg.n_layer)),
        (A + "feed_forward_length", _u32(cfg.n_ff)),
        (A + "attention.head_count", _u32(cfg.n_head)),
        (A + "attention.head_count_kv", _u32(1)),
        (A + "attention.key_length", _u32(cfg.kv_lora_rank + cfg.qk_rope)),
        (A + "attention.value_length", _u32(cfg.kv_lora_rank)),
        (A + "attention.key_length_mla", _u32(cfg.qk_nope + cfg.qk_rope)),
        (A + "attention.value_length_mla", _u32(cfg.v_head)),
        (A + "attention.layer_norm_rms_epsilon", _f32(cfg.rms_eps)),
        (A + "attention.q_lora_rank", _u32(0)),  # no q-LoRA; required unless 26/27 layers
        (A + "attention.kv_lora_rank", _u32(cfg.kv_lora_rank)),
        (A + "leading_dense_block_count", _u32(cfg.n_dense)),
        (A + "expert_count", _u32(cfg.n_expert)),
        (A + "expert_used_count", _u32(cfg.n_expert_used)),
        (A + "expert_group_count", _u32(1)),
        (A + "expert_group_used_count", _u32(1)),
        (A + "expert_feed_forward_length", _u32(cfg.n_ff_exp)),
        (A + "expert_shared_count", _u32(cfg.n_shared)),
        (A + "expert_weights_scale", _f32(1.0)),
        (A + "expert_gating_func", _u32(1)),  # softmax
        (A + "rope.dimension_count", _u32(cfg.qk_rope)),
        (A + "rope.freq_base", _f32(cfg.rope_base)),
        (A + "rope.scaling.type", _str("none")),
    ]


def vocab_kv(vocab_path, n_vocab):
    kv = G.read_kv(vocab_path)
    toks = kv["tokenizer.ggml.tokens"].value
    if len(toks) != n_vocab:
        raise SystemExit(f"export: {vocab_path} has {len(toks)} tokens, the model {n_vocab}")
    out = [(k, v) for k, v in kv.items() if k.startswith("tokenizer.")]
    index = {t: i for i, t in enumerate(toks)}
    fim = {"fim_pre": "<｜fim▁begin｜>", "fim_suf": "<｜fim▁hole｜>", "fim_mid": "<｜fim▁end｜>"}
    for key, text in fim.items():
        name = f"tokenizer.ggml.{key}_token_id"
        if text.encode() in index and name not in kv:
            out.append((name, _u32(index[text.encode()])))
    return out


def tensors(model, dtype):
    """(name, array, type) in llama.cpp's names; 1-D norms and the router stay F32."""
    cfg = model.cfg
    H, Dn, Dv, R = cfg.n_head, cfg.qk_nope, cfg.v_head, cfg.kv_lora_rank
    big = G.GGML_F16 if dtype == "f16" else G.GGML_F32

    def a(t):
        return t.detach().float().cpu().numpy()

    emb = a(model.tok_embd)
    out = [("token_embd.weight", emb, big)]
    for il, blk in enumerate(model.blocks):
        p = f"blk.{il}."
        at = blk.attn
        kvb = a(at.wkv_b).reshape(H, Dn + Dv, R)
        out += [
            (p + "attn_norm.weight", a(blk.attn_norm), G.GGML_F32),
            (p + "attn_q.weight", a(at.wq), big),
            (p + "attn_kv_a_mqa.weight", a(at.wkv_a), big),
            (p + "attn_kv_a_norm.weight", a(at.kv_a_norm), G.GGML_F32),
            (p + "attn_k_b.weight", np.ascontiguousarray(kvb[:, :Dn, :].transpose(0, 2, 1)), big),
            (p + "attn_v_b.weight", np.ascontiguousarray(kvb[:, Dn:, :]), big),
            (p + "attn_output.weight", a(at.wo), big),
            (p + "ffn_norm.weight", a(blk.ffn_norm), G.GGML_F32),
        ]
        f = blk.ffn
        if il < cfg.n_dense:
            out += [(p + "ffn_gate.weight", a(f.w_gate), big), (p + "ffn_up.weight", a(f.w_up), big),
                    (p + "ffn_down.weight", a(f.w_down), big)]
        else:
            out += [
                (p + "ffn_gate_inp.weight", a(f.router), G.GGML_F32),
                (p + "ffn_gate_exps.weight", a(f.gate_exps), big),
                (p + "ffn_up_exps.weight", a(f.up_exps), big),
                (p + "ffn_down_exps.weight", a(f.down_exps), big),
                (p + "ffn_gate_shexp.weight", a(f.gate_sh), big),
                (p + "ffn_up_shexp.weight", a(f.up_sh), big),
                (p + "ffn_down_shexp.weight", a(f.down_sh), big),
            ]
    out += [("output_norm.weight", a(model.output_norm), G.GGML_F32), ("output.weight", emb, big)]
    return out


def export(model, vocab_path, path, dtype="f16", name="fimd-tiny-code"):
    kv = hparam_kv(model.cfg, name) + vocab_kv(vocab_path, model.cfg.n_vocab)
    G.write(path, kv, tensors(model, dtype))


def load_checkpoint(path):
    ck = torch.load(path, map_location="cpu")
    model = DeepSeek2(Config(**ck["config"]))
    model.load_state_dict(ck["model"])
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description="checkpoint -> deepseek2 GGUF")
    ap.add_argument("checkpoint")
    ap.add_argument("--vocab", required=True, help="GGUF whose tokenizer.* keys the model was trained with")
    ap.add_argument("--type", choices=["f32", "f16"], default="f16")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args(argv)
    export(load_checkpoint(a.checkpoint), a.vocab, a.out, a.type)
    print(f"export: wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
