# tools/train/model.py — the deepseek2 forward pass in PyTorch (MLA without q-LoRA, DeepSeekMoE with
# a dense first layer), written so that every tensor maps one to one onto a llama.cpp GGUF tensor.
# Training uses the naive attention form; fimd runs the absorbed form of the same weights.
import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Config:
    n_vocab: int = 4096
    n_ctx: int = 256
    n_embd: int = 192
    n_layer: int = 4
    n_head: int = 4
    kv_lora_rank: int = 64
    qk_nope: int = 32
    qk_rope: int = 16
    v_head: int = 32
    n_ff: int = 512          # dense (leading) layers
    n_dense: int = 1
    n_expert: int = 8
    n_expert_used: int = 2
    n_shared: int = 1
    n_ff_exp: int = 128
    rope_base: float = 10000.0
    rms_eps: float = 1e-6

    def to_dict(self):
        return asdict(self)


def rms_norm(x, w, eps):
    # llama.cpp: y = x / sqrt(mean(x^2) + eps) * w (no mean subtraction, weight as is)
    return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps).to(x.dtype) * w


def rope_tables(cfg, n, device):
    # NORMAL (adjacent-pair) rotation as ggml applies it to deepseek2; theta_i = base^(-2i/n_rot)
    i = torch.arange(cfg.qk_rope // 2, device=device, dtype=torch.float64)
    inv = cfg.rope_base ** (-2.0 * i / cfg.qk_rope)
    ang = torch.arange(n, device=device, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def apply_rope(x, cos, sin):
    # x [..., T, n_rot] with pairs (x[2i], x[2i+1]); cos/sin [T, n_rot/2]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    y0 = x0 * cos - x1 * sin
    y1 = x0 * sin + x1 * cos
    return torch.stack((y0, y1), dim=-1).flatten(-2)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        H, Dn, Dr, Dv, R, D = cfg.n_head, cfg.qk_nope, cfg.qk_rope, cfg.v_head, cfg.kv_lora_rank, cfg.n_embd
        self.wq = nn.Parameter(torch.empty(H * (Dn + Dr), D))
        self.wkv_a = nn.Parameter(torch.empty(R + Dr, D))
        self.kv_a_norm = nn.Parameter(torch.ones(R))
        self.wkv_b = nn.Parameter(torch.empty(H * (Dn + Dv), R))
        self.wo = nn.Parameter(torch.empty(D, H * Dv))
        self.scale = 1.0 / math.sqrt(Dn + Dr)

    def forward(self, a, cos, sin, mask):
        c = self.cfg
        B, T, _ = a.shape
        H, Dn, Dr, Dv, R = c.n_head, c.qk_nope, c.qk_rope, c.v_head, c.kv_lora_rank
        q = (a @ self.wq.t()).view(B, T, H, Dn + Dr).transpose(1, 2)         # B H T Dk
        q_nope, q_pe = q[..., :Dn], apply_rope(q[..., Dn:], cos, sin)
        kv = a @ self.wkv_a.t()
        lat = rms_norm(kv[..., :R], self.kv_a_norm, c.rms_eps)                # B T R
        k_pe = apply_rope(kv[..., R:], cos, sin)                              # B T Dr
        kvb = (lat @ self.wkv_b.t()).view(B, T, H, Dn + Dv).transpose(1, 2)   # B H T Dn+Dv
        k_nope, v = kvb[..., :Dn], kvb[..., Dn:]
        s = q_nope @ k_nope.transpose(-1, -2) + q_pe @ k_pe.unsqueeze(1).transpose(-1, -2)
        s = s.float() * self.scale + mask
        p = torch.softmax(s, dim=-1).to(v.dtype)
        o = (p @ v).transpose(1, 2).reshape(B, T, H * Dv)
        return o @ self.wo.t()


def swiglu(x, wg, wu, wd):
    return (F.silu(x @ wg.t()) * (x @ wu.t())) @ wd.t()


class DenseFFN(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D, Fw = cfg.n_embd, cfg.n_ff
        self.w_gate = nn.Parameter(torch.empty(Fw, D))
        self.w_up = nn.Parameter(torch.empty(Fw, D))
        self.w_down = nn.Parameter(torch.empty(D, Fw))

    def forward(self, f):
        return swiglu(f, self.w_gate, self.w_up, self.w_down), None


class MoE(nn.Module):
    """Softmax router over all experts, top-k kept with their unnormalised probabilities (V2/Lite),
    plus always-on shared experts fused into one wider FFN."""

    def __init__(self, cfg):
        super().__init__()
        D, E, Fe, S = cfg.n_embd, cfg.n_expert, cfg.n_ff_exp, cfg.n_shared
        self.k = cfg.n_expert_used
        self.router = nn.Parameter(torch.empty(E, D))
        self.gate_exps = nn.Parameter(torch.empty(E, Fe, D))
        self.up_exps = nn.Parameter(torch.empty(E, Fe, D))
        self.down_exps = nn.Parameter(torch.empty(E, D, Fe))
        self.gate_sh = nn.Parameter(torch.empty(Fe * S, D))
        self.up_sh = nn.Parameter(torch.empty(Fe * S, D))
        self.down_sh = nn.Parameter(torch.empty(D, Fe * S))

    def forward(self, f):
        B, T, D = f.shape
        x = f.reshape(B * T, D)
        probs = torch.softmax((x.float() @ self.router.float().t()), dim=-1)   # router in f32, as llama.cpp
        w, idx = probs.topk(self.k, dim=-1)
        out = torch.zeros_like(x)
        for e in range(self.router.shape[0]):
            rows, slot = (idx == e).nonzero(as_tuple=True)
            if rows.numel() == 0:
                continue
            xe = x.index_select(0, rows)
            ye = swiglu(xe, self.gate_exps[e], self.up_exps[e], self.down_exps[e])
            out.index_add_(0, rows, (ye * w[rows, slot].unsqueeze(1).to(ye.dtype)).to(out.dtype))
        out = out + swiglu(x, self.gate_sh, self.up_sh, self.down_sh)
        # Switch-style balance term: E * sum_e (share of tokens routed to e) * (mean probability of e)
        E = probs.shape[1]
        load = torch.zeros(E, device=x.device).index_add_(0, idx.reshape(-1),
                                                          torch.ones(idx.numel(), device=x.device))
        aux = E * torch.sum(load / idx.numel() * probs.mean(0))
        return out.view(B, T, D), aux


class Block(nn.Module):
    def __init__(self, cfg, il):
        super().__init__()
        self.cfg = cfg
        self.attn_norm = nn.Parameter(torch.ones(cfg.n_embd))
        self.attn = Attention(cfg)
        self.ffn_norm = nn.Parameter(torch.ones(cfg.n_embd))
        self.ffn = DenseFFN(cfg) if il < cfg.n_dense else MoE(cfg)

    def forward(self, x, cos, sin, mask):
        h = x + self.attn(rms_norm(x, self.attn_norm, self.cfg.rms_eps), cos, sin, mask)
        out, aux = self.ffn(rms_norm(h, self.ffn_norm, self.cfg.rms_eps))
        return h + out, aux


class DeepSeek2(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.tok_embd = nn.Parameter(torch.empty(cfg.n_vocab, cfg.n_embd))
        self.blocks = nn.ModuleList([Block(cfg, il) for il in range(cfg.n_layer)])
        self.output_norm = nn.Parameter(torch.ones(cfg.n_embd))
        self.reset_parameters()

    def reset_parameters(self, seed=None):
        g = torch.Generator().manual_seed(seed if seed is not None else 0)
        resid = 0.02 / math.sqrt(2 * self.cfg.n_layer)
        for name, p in self.named_parameters():
            if p.dim() == 1:
                continue  # norms stay at 1
            std = resid if name.endswith(("wo", "w_down", "down_exps", "down_sh")) else 0.02
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * std)

    def forward(self, ids):
        """ids [B, T] -> logits [B, T, V] (tied output: the GGUF gets output = token_embd), aux loss."""
        B, T = ids.shape
        cos, sin = rope_tables(self.cfg, T, ids.device)
        mask = torch.full((T, T), float("-inf"), device=ids.device).triu(1)
        x = self.tok_embd[ids]
        aux = 0.0
        for blk in self.blocks:
            x, a = blk(x, cos, sin, mask)
            if a is not None:
                aux = aux + a
        y = rms_norm(x, self.output_norm, self.cfg.rms_eps)
        return y @ self.tok_embd.t(), aux

    def n_params(self):
        total = sum(p.numel() for p in self.parameters())
        c = self.cfg
        per_exp = 3 * c.n_embd * c.n_ff_exp
        idle = (c.n_layer - c.n_dense) * (c.n_expert - c.n_expert_used) * per_exp
        return total, total - idle
