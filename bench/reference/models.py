"""Gauntlet's architectures in PyTorch, written for speed: the "best PyTorch" side of the
side-by-side benchmark (docs/BENCHMARKS.md, issue 9).

Same math as trainer/models/*.cc (architectures.md §1, §2, §4 and the sparse_depth scheme in
trainer/models/sparse_depth.h), with Gauntlet's parameter names, so a Gauntlet parameter dump loads
with load_state_dict(strict=True); bench/reference/parity_test.py checks logits, losses and
gradients against //trainer/models:parity_dump at tiny size. Written the way a strong PyTorch user
would: fused QKV, SDPA (is_causal where the mask is plain causal), nn.RMSNorm, rotary tables built
once, and the training loss computed only where training needs logits (the worker model runs its
head on worker rows only). It computes the same loss; the parity test checks that too.

Attention dropout stays inside SDPA as in Gauntlet; that rules out flex_attention (no dropout) for
the worker model's strided causal mask, so it uses SDPA with an additive bias as Gauntlet does.
"""

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn


@dataclasses.dataclass(frozen=True)
class Config:
    arch: str
    vocab_size: int = 65
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 1024
    seq_len: int = 1024
    dropout: float = 0.1
    worker_interval: int = 4
    worker_conv_kernel: int = 3
    sparse_capacity: float = 0.5
    sparse_dense_layers: int = 1
    sparse_aux_loss_weight: float = 0.01
    # One of "attn"/"mlp" per layer; empty: attention in the first half (rounded up).
    hybrid_layer_types: tuple = ()
    hybrid_static_mlp_ratio: int = 2
    # Layer-stack archs (sqa, mixed, looped, matformer, attn_drop): resolved as
    # common/model_config.cc resolves them (the mixer per layer, head counts, ...).
    mixers: tuple = ()
    sqa_q_heads: int = 0
    sqa_kv_heads: int = 0
    slice_len: int = 16
    loops: int = 1
    loop_input_injection: bool = False
    loop_embedding: bool = False
    loop_inter_linear: bool = False
    matformer_granularities: tuple = ()
    matformer_train_mode: str = "joint"
    # Granularity index per layer for logits(); empty: the largest.
    matformer_eval_granularity: tuple = ()

    def layer_types(self):
        if self.hybrid_layer_types:
            return tuple(self.hybrid_layer_types)
        n_attn = (self.n_layers + 1) // 2
        return tuple("attn" if i < n_attn else "mlp" for i in range(self.n_layers))


# Gauntlet's named sizes (trainer/models/model_config.cc). side_by_side checks these against the
# dimensions, vocabulary and parameter count Gauntlet's trainer_bench reports for the same model.
SIZES = {
    "tiny": dict(d_model=32, n_layers=2, n_heads=2, d_ff=128, seq_len=64, dropout=0.0,
                 vocab_size=65),
    "seed": dict(d_model=256, n_layers=4, n_heads=4, d_ff=1024, seq_len=1024, dropout=0.1,
                 vocab_size=65),
    "gpt2-small": dict(d_model=768, n_layers=12, n_heads=12, d_ff=3072, seq_len=1024,
                       dropout=0.0, vocab_size=50304),
}

ARCHS = ("standard", "worker", "sparse_depth", "hybrid", "sqa", "mixed", "looped", "matformer",
         "attn_drop")
# Benchmark model names, in table order -> (arch, size).
MODELS = {
    "seed-standard": ("standard", "seed"),
    "seed-worker": ("worker", "seed"),
    "seed-sparse_depth": ("sparse_depth", "seed"),
    "seed-hybrid": ("hybrid", "seed"),
    "gpt2-small": ("standard", "gpt2-small"),
}


def model_config(name, size=None):
    """Config of a benchmark model; `size` replaces its named size (e.g. "tiny" for CPU runs)."""
    if name not in MODELS:
        raise ValueError(f"unknown model '{name}'; known: {', '.join(MODELS)}")
    arch, default_size = MODELS[name]
    return Config(arch=arch, **SIZES[size or default_size])


# ----------------------------------------------------------------------------- layers

def rotary_tables(head_dim, max_len):
    """Full-width interleaved RoPE tables (max_len, head_dim): pair (2i, 2i+1) turns by
    t * 10000^(-2i/d_h); with swap(x) = (x_2i+1, x_2i) a rotation is x * cos + swap(x) * sin."""
    half = head_dim // 2
    inv_freq = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64) * 2.0 / head_dim)
    angles = torch.outer(torch.arange(max_len, dtype=torch.float64), inv_freq)
    cos, sin = angles.cos().float(), angles.sin().float()
    return (torch.stack([cos, cos], -1).flatten(-2), torch.stack([-sin, sin], -1).flatten(-2))


def apply_rotary(x, cos, sin):
    swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)
    return x * cos + swapped * sin


def merge_heads(x):
    b, h, t, dh = x.shape
    return x.transpose(1, 2).reshape(b, t, h * dh)


class GatedSelfAttention(nn.Module):
    def __init__(self, d, n_heads, dropout):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.gate = nn.Linear(d, d, bias=False)
        self.out = nn.Linear(d, d, bias=False)

    def forward(self, h, cos, sin):
        """cos/sin: (T, d_h) or per-row (B, T, d_h), in h's compute dtype."""
        b, t, _ = h.shape
        qkv = self.qkv(h).view(b, t, 3, self.n_heads, -1)
        qk = apply_rotary(qkv[:, :, :2], cos[..., None, None, :], sin[..., None, None, :])
        q, k = qk[:, :, 0].transpose(1, 2), qk[:, :, 1].transpose(1, 2)
        v = qkv[:, :, 2].transpose(1, 2)
        context = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        return self.out(merge_heads(context) * torch.sigmoid(self.gate(h)))


class GeluFfn(nn.Module):
    def __init__(self, d, d_hidden):
        super().__init__()
        self.fc1 = nn.Linear(d, d_hidden)
        self.fc2 = nn.Linear(d_hidden, d)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class TransformerBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.p = c.dropout
        self.norm1 = nn.RMSNorm(c.d_model)
        self.attn = GatedSelfAttention(c.d_model, c.n_heads, c.dropout)
        self.norm2 = nn.RMSNorm(c.d_model)
        self.ffn = GeluFfn(c.d_model, c.d_ff)

    def forward(self, x, cos, sin):
        x = x + F.dropout(self.attn(self.norm1(x), cos, sin), self.p, self.training)
        return x + F.dropout(self.ffn(self.norm2(x)), self.p, self.training)

    def delta(self, x, cos, sin):
        """What forward adds to x (both residual branches)."""
        attn = F.dropout(self.attn(self.norm1(x), cos, sin), self.p, self.training)
        return attn + F.dropout(self.ffn(self.norm2(x + attn)), self.p, self.training)


class StaticMlpBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.p = c.dropout
        d = c.d_model
        self.norm1 = nn.RMSNorm(d)
        self.static_mlp_a = nn.Linear(d, c.hybrid_static_mlp_ratio * d)
        self.static_mlp_b = nn.Linear(c.hybrid_static_mlp_ratio * d, d)
        self.norm2 = nn.RMSNorm(d)
        self.ffn = GeluFfn(d, c.d_ff)

    def forward(self, x):
        mixed = self.static_mlp_b(F.gelu(self.static_mlp_a(self.norm1(x))))
        x = x + F.dropout(mixed, self.p, self.training)
        return x + F.dropout(self.ffn(self.norm2(x)), self.p, self.training)


# ----------------------------------------------------------------------------- models

class LanguageModel(nn.Module):
    """Embedding, blocks, RMSNorm_f and an untied head. forward(tokens, targets) is the training
    loss (LM cross-entropy over the trained positions, in fp32, plus any auxiliary loss);
    logits(tokens, phase) gives every position's logits for checks."""

    def __init__(self, c):
        super().__init__()
        self.config = c
        # The dtype attention inputs have (bf16 under autocast): tables are cast once per forward.
        self.compute_dtype = torch.float32
        self.embed = nn.Embedding(c.vocab_size, c.d_model)
        cos, sin = rotary_tables(c.d_model // c.n_heads, c.seq_len)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.norm_f = nn.RMSNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)

    def tables(self, seq_len):
        return (self.rope_cos[:seq_len].to(self.compute_dtype),
                self.rope_sin[:seq_len].to(self.compute_dtype))

    def hidden(self, tokens, phase=0):
        """-> (final residual stream (B, T, d), train positions or None for all, aux loss)."""
        raise NotImplementedError

    def forward(self, tokens, targets):
        x, positions, aux = self.hidden(tokens)
        if positions is not None:  # logits only where the loss needs them
            x, targets = x[:, positions], targets[:, positions]
        logits = self.head(self.norm_f(x))
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        return loss if aux is None else loss + aux

    def logits(self, tokens, phase=0):
        """-> (logits (B, T, V), train mask (T,) bool, aux loss 0-dim)."""
        x, positions, aux = self.hidden(tokens, phase)
        mask = torch.ones(tokens.shape[1], dtype=torch.bool, device=tokens.device)
        if positions is not None:
            mask = torch.zeros_like(mask)
            mask[positions] = True
        if aux is None:
            aux = torch.zeros((), device=tokens.device)
        return self.head(self.norm_f(x)), mask, aux


class Standard(LanguageModel):
    def __init__(self, c):
        super().__init__(c)
        self.blocks = nn.ModuleList(TransformerBlock(c) for _ in range(c.n_layers))

    def hidden(self, tokens, phase=0):
        cos, sin = self.tables(tokens.shape[1])
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, cos, sin)
        return x, None, None


class Hybrid(LanguageModel):
    def __init__(self, c):
        super().__init__(c)
        self.kinds = c.layer_types()
        self.blocks = nn.ModuleList(TransformerBlock(c) if kind == "attn" else StaticMlpBlock(c)
                                    for kind in self.kinds)

    def hidden(self, tokens, phase=0):
        cos, sin = self.tables(tokens.shape[1])
        x = self.embed(tokens)
        for kind, block in zip(self.kinds, self.blocks):
            x = block(x, cos, sin) if kind == "attn" else block(x)
        return x, None, None


def worker_positions(seq_len, interval, phase):
    """t with (t + phase) % k == k - 1, plus the last position (model_config.h)."""
    return [t for t in range(seq_len) if (t + phase) % interval == interval - 1 or t == seq_len - 1]


class WorkerBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c.d_model
        self.p, self.n_heads, self.kernel = c.dropout, c.n_heads, c.worker_conv_kernel
        self.conv = nn.Conv1d(d, d, c.worker_conv_kernel, groups=d, bias=True)
        self.norm1 = nn.RMSNorm(d)
        self.attn_kv = nn.Linear(d, 2 * d, bias=False)
        self.attn_q = nn.Linear(d, d, bias=False)
        self.attn_gate = nn.Linear(d, d, bias=False)
        self.attn_out = nn.Linear(d, d, bias=False)
        self.norm2 = nn.RMSNorm(d)
        self.ffn = GeluFfn(d, c.d_ff)

    def causal_conv(self, x):
        # Depthwise causal conv as shifted multiply-adds: out_t = b + sum_j w_j x_{t-(K-1)+j}.
        t = x.shape[1]
        padded = F.pad(x, (0, 0, self.kernel - 1, 0))
        taps = self.conv.weight[:, 0]  # (d, K)
        out = self.conv.bias + padded[:, :t] * taps[:, 0]
        for j in range(1, self.kernel):
            out = out + padded[:, j:j + t] * taps[:, j]
        return out

    def forward(self, x, gather, scatter, bias, cos, sin, cos_w, sin_w):
        b, t, _ = x.shape
        h = self.norm1(self.causal_conv(x))
        kv = self.attn_kv(h).view(b, t, 2, self.n_heads, -1)
        k = apply_rotary(kv[:, :, 0], cos[:, None], sin[:, None]).transpose(1, 2)
        v = kv[:, :, 1].transpose(1, 2)
        h_w = gather(h)
        q = apply_rotary(self.attn_q(h_w).unflatten(-1, (self.n_heads, -1)), cos_w[:, None],
                         sin_w[:, None]).transpose(1, 2)
        context = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias.to(q.dtype), dropout_p=self.p if self.training else 0.0)
        attn = self.attn_out(merge_heads(context) * torch.sigmoid(self.attn_gate(h_w)))
        x_w = gather(x) + F.dropout(attn, self.p, self.training)
        x_w = x_w + F.dropout(self.ffn(self.norm2(x_w)), self.p, self.training)
        return scatter(x, x_w)


class Worker(LanguageModel):
    def __init__(self, c):
        super().__init__(c)
        self.worker_type = nn.Parameter(torch.randn(c.d_model) * 0.02)
        self.blocks = nn.ModuleList(WorkerBlock(c) for _ in range(c.n_layers))
        # The training layout (T = seq_len, phase 0) lives on the device: no host work per step.
        index, indicator, bias = self.layout(c.seq_len, 0)
        self.train_slice = index if isinstance(index, slice) else None
        self.register_buffer("train_index", torch.tensor(
            worker_positions(c.seq_len, c.worker_interval, 0)), persistent=False)
        self.register_buffer("train_indicator", indicator, persistent=False)
        self.register_buffer("train_bias", bias, persistent=False)

    def layout(self, seq_len, phase, device=None):
        """(positions as a slice when they form a regular grid, else an index tensor; (T, 1)
        worker indicator; (T_w, T) additive causal bias)."""
        pos = worker_positions(seq_len, self.config.worker_interval, phase)
        stride = self.config.worker_interval
        where = torch.tensor(pos, device=device)
        regular = all(b - a == stride for a, b in zip(pos, pos[1:]))
        index = slice(pos[0], seq_len, stride) if regular else where
        indicator = torch.zeros(seq_len, 1, device=device).index_fill_(0, where, 1.0)
        allowed = torch.arange(seq_len, device=device)[None, :] <= where[:, None]
        bias = torch.zeros(allowed.shape, device=device).masked_fill_(~allowed, float("-inf"))
        return index, indicator, bias

    def hidden(self, tokens, phase=0):
        seq_len = tokens.shape[1]
        if seq_len == self.config.seq_len and phase == 0:
            index = self.train_slice if self.train_slice is not None else self.train_index
            indicator, bias = self.train_indicator, self.train_bias
        else:
            index, indicator, bias = self.layout(seq_len, phase, tokens.device)
        bias = bias.to(self.compute_dtype)
        cos, sin = self.tables(seq_len)
        cos_w, sin_w = cos[index], sin[index]
        if isinstance(index, slice):
            def gather(x):
                return x[:, index]

            def scatter(x, x_w):
                return x.slice_scatter(x_w.to(x.dtype), 1, index.start, index.stop, index.step)
        else:
            def gather(x):
                return x.index_select(1, index)

            def scatter(x, x_w):
                return x.index_copy(1, index, x_w.to(x.dtype))
        x = self.embed(tokens) + indicator * self.worker_type
        for block in self.blocks:
            x = block(x, gather, scatter, bias, cos, sin, cos_w, sin_w)
        return x, index, None


class SparseDepth(LanguageModel):
    SLOT_FACTOR = 1.5  # common/model_config.h: kSparseSlotFactor

    def __init__(self, c):
        super().__init__(c)
        self.blocks = nn.ModuleList(TransformerBlock(c) for _ in range(c.n_layers))
        self.routers = nn.ModuleList(nn.Linear(c.d_model, 1)
                                     for _ in range(c.n_layers - c.sparse_dense_layers))

    def slots(self, seq_len):
        bound = math.ceil(self.SLOT_FACTOR * self.config.sparse_capacity * seq_len)
        return min(seq_len, max(1, bound))

    def hidden(self, tokens, phase=0):
        c = self.config
        b, seq_len = tokens.shape
        slots = self.slots(seq_len)
        cos, sin = self.tables(seq_len)
        positions = torch.arange(seq_len, device=tokens.device).expand(b, seq_len)
        slot_ids = torch.arange(slots, device=tokens.device)[None]
        x = self.embed(tokens)
        aux = torch.zeros((), device=tokens.device)
        for i, block in enumerate(self.blocks):
            if i < c.sparse_dense_layers:
                x = block(x, cos, sin)
                continue
            logit = self.routers[i - c.sparse_dense_layers](x).squeeze(-1).float()
            prob = torch.sigmoid(logit)
            # Routed iff the logit is positive and at most `slots` tokens up to it want to be.
            wants = logit > 0
            rank = wants.cumsum(1)
            routed = wants & (rank <= slots)
            mean_prob = prob.mean()
            fraction = routed.float().mean() + (mean_prob - mean_prob.detach())
            aux = aux + (fraction - c.sparse_capacity) ** 2
            # Routed token n of a row goes to slot n - 1; the rest to a spill column, dropped.
            target = torch.where(routed, rank - 1, torch.full_like(rank, slots))
            slot_pos = torch.zeros(b, slots + 1, dtype=torch.long, device=tokens.device).scatter(
                1, target, positions)[:, :slots]
            valid = slot_ids < routed.sum(1, keepdim=True)
            index = slot_pos[..., None].expand(b, slots, c.d_model)
            delta = block.delta(x.gather(1, index), cos[slot_pos], sin[slot_pos])
            scale = prob.gather(1, slot_pos) * valid.float()
            x = x.scatter_add(1, index, (delta * scale[..., None]).to(x.dtype))
        n_routed = c.n_layers - c.sparse_dense_layers
        return x, None, aux * (c.sparse_aux_loss_weight / n_routed) if n_routed else aux



# ----------------------------------------------------------------------------- layer stack

class SparseQueryAttention(nn.Module):
    """H_q query heads, H_kv key/value heads of width d / n_heads; GQA grouping."""

    def __init__(self, c):
        super().__init__()
        d, dh = c.d_model, c.d_model // c.n_heads
        self.q_heads, self.kv_heads, self.dropout = c.sqa_q_heads, c.sqa_kv_heads, c.dropout
        self.q = nn.Linear(d, self.q_heads * dh, bias=False)
        self.kv = nn.Linear(d, 2 * self.kv_heads * dh, bias=False)
        self.gate = nn.Linear(d, self.q_heads * dh, bias=False)
        self.out = nn.Linear(self.q_heads * dh, d, bias=False)

    def forward(self, h, cos, sin):
        b, t, _ = h.shape
        c, s = cos[:, None], sin[:, None]
        q = apply_rotary(self.q(h).view(b, t, self.q_heads, -1), c, s).transpose(1, 2)
        kv = self.kv(h).view(b, t, 2, self.kv_heads, -1)
        k = apply_rotary(kv[:, :, 0], c, s).transpose(1, 2)
        v = kv[:, :, 1].transpose(1, 2)
        context = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True,
            enable_gqa=self.kv_heads != self.q_heads)
        return self.out(merge_heads(context) * torch.sigmoid(self.gate(h)))


class SlicedSelfAttention(GatedSelfAttention):
    """Gated attention within contiguous chunks of slice_len positions."""

    def __init__(self, c):
        super().__init__(c.d_model, c.n_heads, c.dropout)
        self.slice_len = c.slice_len

    def forward(self, h, cos, sin):
        b, t, _ = h.shape
        w = min(self.slice_len, t)
        n = -(-t // w)
        qkv = self.qkv(h).view(b, t, 3, self.n_heads, -1)
        qk = apply_rotary(qkv[:, :, :2], cos[..., None, None, :], sin[..., None, None, :])
        parts = (qk[:, :, 0], qk[:, :, 1], qkv[:, :, 2])

        def chunks(x):  # (B, T, H, dh) -> (B * n, H, w, dh), padding after the last token
            x = F.pad(x, (0, 0, 0, 0, 0, n * w - t))
            return x.view(b, n, w, self.n_heads, -1).flatten(0, 1).transpose(1, 2)

        context = F.scaled_dot_product_attention(
            *map(chunks, parts), dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        context = context.transpose(1, 2).reshape(b, n * w, -1)[:, :t]
        return self.out(context * torch.sigmoid(self.gate(h)))


class StaticMlp(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a = nn.Linear(c.d_model, c.hybrid_static_mlp_ratio * c.d_model)
        self.b = nn.Linear(c.hybrid_static_mlp_ratio * c.d_model, c.d_model)

    def forward(self, x):
        return self.b(F.gelu(self.a(x)))


class NestedFfn(GeluFfn):
    def forward(self, x, width=None):
        if width is None or width == self.fc1.out_features:
            return super().forward(x)
        hidden = F.gelu(F.linear(x, self.fc1.weight[:width], self.fc1.bias[:width]))
        return F.linear(hidden, self.fc2.weight[:, :width], self.fc2.bias)


class MixerBlock(nn.Module):
    def __init__(self, c, mixer):
        super().__init__()
        self.p, self.mixer = c.dropout, mixer
        if mixer != "none":
            self.norm1 = nn.RMSNorm(c.d_model)
        if mixer == "attn":
            self.attn = GatedSelfAttention(c.d_model, c.n_heads, c.dropout)
        elif mixer == "sliced_attn":
            self.attn = SlicedSelfAttention(c)
        elif mixer == "sqa":
            self.sqa = SparseQueryAttention(c)
        elif mixer == "static_mlp":
            self.static_mlp = StaticMlp(c)
        self.norm2 = nn.RMSNorm(c.d_model)
        self.ffn = NestedFfn(c.d_model, c.d_ff)

    def forward(self, x, cos, sin, width):
        if self.mixer != "none":
            h = self.norm1(x)
            if self.mixer == "static_mlp":
                mixed = self.static_mlp(h)
            else:
                mixed = (self.sqa if self.mixer == "sqa" else self.attn)(h, cos, sin)
            x = x + F.dropout(mixed, self.p, self.training)
        return x + F.dropout(self.ffn(self.norm2(x), width), self.p, self.training)


class LayerStack(LanguageModel):
    """sqa, mixed, looped, matformer, attn_drop: MixerBlocks, looped config.loops times."""

    def __init__(self, c):
        super().__init__(c)
        self.blocks = nn.ModuleList(MixerBlock(c, mixer) for mixer in c.mixers)
        if c.loop_embedding:
            self.loop_embedding = nn.Parameter(torch.randn(c.loops, c.d_model) * 0.02)
        if c.loop_inter_linear and c.loops > 1:
            self.inter_loop = nn.ModuleList(nn.Linear(c.d_model, c.d_model, bias=False)
                                            for _ in range(c.loops - 1))
        self.widths = [round(g * c.d_ff) for g in c.matformer_granularities]
        index = c.matformer_eval_granularity or (len(self.widths) - 1,) * c.n_layers
        self.eval_widths = [self.widths[i] for i in index] if self.widths else [c.d_ff] * c.n_layers

    def stack(self, tokens, widths):
        c = self.config
        cos, sin = self.tables(tokens.shape[1])
        e = x = self.embed(tokens)
        for r in range(c.loops):
            if r > 0:
                if c.loop_inter_linear:
                    x = x + self.inter_loop[r - 1](x)
                if c.loop_input_injection:
                    x = x + e
            if c.loop_embedding:
                x = x + self.loop_embedding[r]
            for block, width in zip(self.blocks, widths):
                x = block(x, cos, sin, width)
        return x

    def hidden(self, tokens, phase=0):
        return self.stack(tokens, self.eval_widths), None, None

    def forward(self, tokens, targets):
        if not self.widths:
            return super().forward(tokens, targets)
        if self.config.matformer_train_mode == "sample":
            chosen = [self.widths[int(torch.randint(len(self.widths), (1,)))]]
        else:
            chosen = self.widths
        losses = [F.cross_entropy(self.head(self.norm_f(self.stack(tokens, [w] * len(self.blocks))))
                                  .float().flatten(0, 1), targets.flatten()) for w in chosen]
        return sum(losses) / len(losses)

CLASSES = {"standard": Standard, "worker": Worker, "sparse_depth": SparseDepth, "hybrid": Hybrid,
           "sqa": LayerStack, "mixed": LayerStack, "looped": LayerStack, "matformer": LayerStack,
           "attn_drop": LayerStack}


def build(config):
    return CLASSES[config.arch](config)
