"""An independent PyTorch reference of the Gauntlet architectures, written from
shared/docs/architectures.md (sections 1, 2, 4), the sparse_depth scheme in
trainer/models/sparse_depth.h and docs/ARCHITECTURES.md (the layer-stack archs), in plain
functional form over a dict of named parameters.

It deliberately computes things differently from the C++ models where the math allows it, so that
parity checks the math rather than a transcription:
  - attention is written out (scores, -inf mask, softmax, weighted sum), never SDPA;
  - the worker model computes queries and updates at every position and keeps the worker rows
    with torch.where; its conv is an explicit sum of shifted copies;
  - sparse_depth loops over rows and runs each row's routed tokens as their own sequence;
  - RoPE writes even and odd channels through strided slices;
  - sliced attention is one mask over the whole window (same chunk and not later), not chunked
    sequences; SQA indexes key/value heads per query head instead of SDPA's grouping.
"""

import math

import torch
import torch.nn.functional as F


def rms_norm(x, weight):
    eps = torch.finfo(x.dtype).eps
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def rope(x, positions):
    """x: (..., T, d_h); positions: (T,) int. Pair (2i, 2i+1) turns by t * 10000^(-2i/d_h)."""
    d_h = x.shape[-1]
    i = torch.arange(d_h // 2, dtype=torch.float64)
    angle = positions.to(torch.float64)[:, None] * torch.pow(10000.0, -2.0 * i / d_h)[None, :]
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = torch.zeros_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def heads(x, n_heads):
    b, t, d = x.shape
    return x.reshape(b, t, n_heads, d // n_heads).permute(0, 2, 1, 3)


def unheads(x):
    b, h, t, dh = x.shape
    return x.permute(0, 2, 1, 3).reshape(b, t, h * dh)


def attend(q, k, v, allowed):
    """Softmax attention; allowed (Tq, Tk) bool."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def ffn(p, prefix, x):
    hidden = F.gelu(x @ p[prefix + "fc1.weight"].T + p[prefix + "fc1.bias"])
    return hidden @ p[prefix + "fc2.weight"].T + p[prefix + "fc2.bias"]


def standard_block(p, prefix, x, positions, n_heads):
    """architectures.md §1 block on x (B, T, d) whose tokens sit at `positions` (T,)."""
    d = x.shape[-1]
    h = rms_norm(x, p[prefix + "norm1.weight"])
    w_qkv = p[prefix + "attn.qkv.weight"]
    q = rope(heads(h @ w_qkv[:d].T, n_heads), positions)
    k = rope(heads(h @ w_qkv[d:2 * d].T, n_heads), positions)
    v = heads(h @ w_qkv[2 * d:].T, n_heads)
    allowed = positions[None, :] <= positions[:, None]
    context = unheads(attend(q, k, v, allowed))
    gate = torch.sigmoid(h @ p[prefix + "attn.gate.weight"].T)
    x = x + (context * gate) @ p[prefix + "attn.out.weight"].T
    return x + ffn(p, prefix + "ffn.", rms_norm(x, p[prefix + "norm2.weight"]))


def head(p, x):
    return rms_norm(x, p["norm_f.weight"]) @ p["head.weight"].T


def standard(p, cfg, tokens):
    x = p["embed.weight"][tokens]
    positions = torch.arange(tokens.shape[1])
    for i in range(cfg["n_layers"]):
        x = standard_block(p, f"blocks.{i}.", x, positions, cfg["n_heads"])
    return head(p, x), torch.ones(tokens.shape[1], dtype=torch.bool), torch.zeros(()), {}


def worker_mask(seq_len, k, phase):
    t = torch.arange(seq_len)
    mask = (t + phase) % k == k - 1
    mask[-1] = True
    return mask


def worker(p, cfg, tokens, phase):
    b, seq_len = tokens.shape
    n_heads, k_int = cfg["n_heads"], cfg["worker_interval"]
    is_worker = worker_mask(seq_len, k_int, phase)
    x = p["embed.weight"][tokens] + is_worker[:, None].to(torch.float32) * p["worker_type"]
    positions = torch.arange(seq_len)
    d = x.shape[-1]
    for i in range(cfg["n_layers"]):
        pre = f"blocks.{i}."
        w = p[pre + "conv.weight"]  # (d, 1, K): tap j multiplies x_{t - (K - 1) + j}
        kernel = w.shape[-1]
        mixed = p[pre + "conv.bias"].expand_as(x)
        for j in range(kernel):
            shift = kernel - 1 - j
            shifted = torch.cat([x.new_zeros(b, shift, d), x[:, :seq_len - shift]], dim=1)
            mixed = mixed + w[:, 0, j] * shifted
        h = rms_norm(mixed, p[pre + "norm1.weight"])
        w_kv = p[pre + "attn_kv.weight"]
        key = rope(heads(h @ w_kv[:d].T, n_heads), positions)
        value = heads(h @ w_kv[d:].T, n_heads)
        query = rope(heads(h @ p[pre + "attn_q.weight"].T, n_heads), positions)
        allowed = positions[None, :] <= positions[:, None]
        context = unheads(attend(query, key, value, allowed))
        gate = torch.sigmoid(h @ p[pre + "attn_gate.weight"].T)
        updated = x + (context * gate) @ p[pre + "attn_out.weight"].T
        updated = updated + ffn(p, pre + "ffn.", rms_norm(updated, p[pre + "norm2.weight"]))
        # Only workers take the update; the raw stream of every other token is left as it was.
        x = torch.where(is_worker[None, :, None], updated, x)
    return head(p, x), is_worker, torch.zeros(()), {}


# trainer/models/sparse_depth.h: kSlotFactor.
SPARSE_SLOT_FACTOR = 1.5


def sparse_depth(p, cfg, tokens):
    b, seq_len = tokens.shape
    x = p["embed.weight"][tokens]
    positions = torch.arange(seq_len)
    dense = cfg["sparse_dense_layers"]
    slots = min(seq_len, max(1, math.ceil(SPARSE_SLOT_FACTOR * cfg["sparse_capacity"] * seq_len)))
    aux = torch.zeros(())
    layers = torch.full((b, seq_len), float(dense))
    fractions = []
    capped_rows = 0
    for i in range(cfg["n_layers"]):
        pre = f"blocks.{i}."
        if i < dense:
            x = standard_block(p, pre, x, positions, cfg["n_heads"])
            continue
        j = i - dense
        logit = (x @ p[f"routers.{j}.weight"].T + p[f"routers.{j}.bias"])[..., 0]
        prob = torch.sigmoid(logit)
        # Slot bound: routed iff the logit is positive and fewer than `slots` earlier tokens of
        # the row were routed (written as a loop over positions, not a cumsum).
        routed = torch.zeros_like(logit, dtype=torch.bool)
        capped_rows += int(((logit > 0).sum(dim=1) > slots).sum())
        for r in range(b):
            taken = 0
            for t in range(seq_len):
                if logit[r, t] > 0 and taken < slots:
                    routed[r, t] = True
                    taken += 1
        rows = []
        for r in range(b):
            where = routed[r].nonzero().flatten()
            if where.numel() == 0:
                rows.append(x[r])
                continue
            sub = x[r, where][None]
            out = standard_block(p, pre, sub, where, cfg["n_heads"])
            rows.append(x[r].index_add(0, where, (out - sub)[0] * prob[r, where, None]))
        x = torch.stack(rows)
        layers = layers + routed.to(torch.float32)
        fractions.append(routed.to(torch.float32).mean().item())
        share = routed.to(torch.float32).mean() + prob.mean() - prob.mean().detach()
        aux = aux + (share - cfg["sparse_capacity"]) ** 2
    n_routed = cfg["n_layers"] - dense
    if n_routed:
        aux = aux * cfg["sparse_aux_loss_weight"] / n_routed
    stats = {"layers_per_token": layers.mean().item(), "routed_fractions": fractions,
             "capped_rows": capped_rows}
    return head(p, x), torch.ones(seq_len, dtype=torch.bool), aux, stats


def hybrid(p, cfg, tokens):
    x = p["embed.weight"][tokens]
    positions = torch.arange(tokens.shape[1])
    for i, kind in enumerate(cfg["hybrid_layer_types"]):
        pre = f"blocks.{i}."
        if kind == "attn":
            x = standard_block(p, pre, x, positions, cfg["n_heads"])
            continue
        u = rms_norm(x, p[pre + "norm1.weight"])
        hidden = F.gelu(u @ p[pre + "static_mlp_a.weight"].T + p[pre + "static_mlp_a.bias"])
        x = x + hidden @ p[pre + "static_mlp_b.weight"].T + p[pre + "static_mlp_b.bias"]
        x = x + ffn(p, pre + "ffn.", rms_norm(x, p[pre + "norm2.weight"]))
    return head(p, x), torch.ones(tokens.shape[1], dtype=torch.bool), torch.zeros(()), {}


LAYER_STACK_ARCHS = ("sqa", "mixed", "looped", "matformer", "attn_drop")


def mixer(p, pre, kind, h, positions, cfg):
    """What a layer-stack mixer adds to the stream, from its normalised input h (B, T, d)."""
    d = h.shape[-1]
    if kind == "static_mlp":
        hidden = F.gelu(h @ p[pre + "static_mlp.a.weight"].T + p[pre + "static_mlp.a.bias"])
        return hidden @ p[pre + "static_mlp.b.weight"].T + p[pre + "static_mlp.b.bias"]
    allowed = positions[None, :] <= positions[:, None]
    if kind == "sliced_attn":
        chunk = positions // cfg["slice_len"]
        allowed = allowed & (chunk[None, :] == chunk[:, None])
    if kind in ("attn", "sliced_attn"):
        w_qkv, n_heads = p[pre + "attn.qkv.weight"], cfg["n_heads"]
        q = rope(heads(h @ w_qkv[:d].T, n_heads), positions)
        k = rope(heads(h @ w_qkv[d:2 * d].T, n_heads), positions)
        v = heads(h @ w_qkv[2 * d:].T, n_heads)
        gate, out = p[pre + "attn.gate.weight"], p[pre + "attn.out.weight"]
    else:  # sqa: query head j reads key/value head j // (H_q / H_kv)
        q_heads, kv_heads = cfg["sqa_q_heads"], cfg["sqa_kv_heads"]
        kv_width = kv_heads * (d // cfg["n_heads"])
        w_kv = p[pre + "sqa.kv.weight"]
        q = rope(heads(h @ p[pre + "sqa.q.weight"].T, q_heads), positions)
        group = torch.div(torch.arange(q_heads), q_heads // kv_heads, rounding_mode="floor")
        k = rope(heads(h @ w_kv[:kv_width].T, kv_heads), positions)[:, group]
        v = heads(h @ w_kv[kv_width:].T, kv_heads)[:, group]
        gate, out = p[pre + "sqa.gate.weight"], p[pre + "sqa.out.weight"]
    context = unheads(attend(q, k, v, allowed))
    return (context * torch.sigmoid(h @ gate.T)) @ out.T


def layer_stack(p, cfg, tokens, widths):
    """Final residual stream; layer i's FFN uses its first widths[i] hidden units."""
    e = p["embed.weight"][tokens]
    positions = torch.arange(tokens.shape[1])
    x = e
    for r in range(cfg.get("loops", 1)):
        if r > 0 and cfg.get("loop_inter_linear"):
            x = x + x @ p[f"inter_loop.{r - 1}.weight"].T
        if r > 0 and cfg.get("loop_input_injection"):
            x = x + e
        if cfg.get("loop_embedding"):
            x = x + p["loop_embedding"][r]
        for i, kind in enumerate(cfg["mixers"]):
            pre = f"blocks.{i}."
            if kind != "none":
                x = x + mixer(p, pre, kind, rms_norm(x, p[pre + "norm1.weight"]), positions, cfg)
            m = widths[i]
            u = rms_norm(x, p[pre + "norm2.weight"])
            hidden = F.gelu(u @ p[pre + "ffn.fc1.weight"][:m].T + p[pre + "ffn.fc1.bias"][:m])
            x = x + hidden @ p[pre + "ffn.fc2.weight"][:, :m].T + p[pre + "ffn.fc2.bias"]
    return x


def granularity_widths(cfg):
    return [round(g * cfg["d_ff"]) for g in cfg.get("matformer_granularities", ())]


def eval_widths(cfg):
    widths = granularity_widths(cfg)
    if not widths:
        return [cfg["d_ff"]] * cfg["n_layers"]
    index = cfg.get("matformer_eval_granularity") or [len(widths) - 1] * cfg["n_layers"]
    return [widths[i] for i in index]


def training_loss(arch, p, cfg, inputs, targets):
    """The training pass's loss: MatFormer (joint) averages its granularities' LM losses."""
    widths = granularity_widths(cfg)
    assert arch == "matformer" and widths, "only MatFormer has a training loss of its own"
    losses = [F.cross_entropy(head(p, layer_stack(p, cfg, inputs, [w] * cfg["n_layers"]))
                              .reshape(-1, cfg["vocab_size"]), targets.reshape(-1))
              for w in widths]
    return sum(losses) / len(losses)


def forward(arch, p, cfg, tokens, phase):
    if arch in LAYER_STACK_ARCHS:
        x = layer_stack(p, cfg, tokens, eval_widths(cfg))
        return head(p, x), torch.ones(tokens.shape[1], dtype=torch.bool), torch.zeros(()), {}
    if arch == "standard":
        return standard(p, cfg, tokens)
    if arch == "worker":
        return worker(p, cfg, tokens, phase)
    if arch == "sparse_depth":
        return sparse_depth(p, cfg, tokens)
    if arch == "hybrid":
        return hybrid(p, cfg, tokens)
    raise ValueError(arch)


def parameter_count(arch, cfg):
    """Closed-form parameter counts (architectures.md §1-§2 and the headers)."""
    v, d, n, d_ff = cfg["vocab_size"], cfg["d_model"], cfg["n_layers"], cfg["d_ff"]
    norms_and_ffn = 2 * d + 2 * d * d_ff + d_ff + d
    attention = 5 * d * d
    outer = v * d + d + d * v
    if arch == "standard":
        return outer + n * (attention + norms_and_ffn)
    if arch == "worker":
        kernel = cfg["worker_conv_kernel"]
        return outer + d + n * (attention + norms_and_ffn + kernel * d + d)
    if arch == "sparse_depth":
        return outer + n * (attention + norms_and_ffn) + (n - cfg["sparse_dense_layers"]) * (d + 1)
    if arch in LAYER_STACK_ARCHS:
        head_width = d // cfg["n_heads"]
        total = outer
        for kind in cfg["mixers"]:
            total += norms_and_ffn - (d if kind == "none" else 0)
            if kind in ("attn", "sliced_attn"):
                total += attention
            elif kind == "sqa":
                total += (3 * cfg["sqa_q_heads"] + 2 * cfg["sqa_kv_heads"]) * head_width * d
            elif kind == "static_mlp":
                ratio = cfg["hybrid_static_mlp_ratio"]
                total += 2 * ratio * d * d + ratio * d + d
        loops = cfg.get("loops", 1)
        if cfg.get("loop_embedding"):
            total += loops * d
        if cfg.get("loop_inter_linear"):
            total += (loops - 1) * d * d
        return total
    if arch == "hybrid":
        ratio = cfg["hybrid_static_mlp_ratio"]
        static = 2 * ratio * d * d + ratio * d + d
        return outer + sum(norms_and_ffn + (attention if kind == "attn" else static)
                           for kind in cfg["hybrid_layer_types"])
    raise ValueError(arch)
