#!/usr/bin/python3
"""Golden logits for test/arch.test.ts: an independent float64 implementation of transformers'
Llama / Mistral / Qwen2 forward (modeling_llama.py, modeling_qwen2.py, modeling_rope_utils.py)
run on the directories `node dist/test/hf-dirs.js DIR` writes. Needs Debian's python3-torch.

    node dist/test/hf-dirs.js /tmp/arch
    /usr/bin/python3 scripts/golden-logits.py /tmp/arch test/fixtures/arch-golden.json

It reads the safetensors bytes itself and follows HF's conventions (rotate-half RoPE on the
rows as stored, repeat_kv for grouped heads), so it shares no code or layout with bitcrush.
"""
import base64
import json
import math
import os
import struct
import sys

import numpy as np
import torch


def read_safetensors(path):
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, e in header.items():
        if name == '__metadata__':
            continue
        a, b = e['data_offsets']
        raw = body[a:b]
        if e['dtype'] == 'F32':
            v = np.frombuffer(raw, dtype='<f4').astype(np.float64)
        elif e['dtype'] == 'F16':
            v = np.frombuffer(raw, dtype='<f2').astype(np.float64)
        elif e['dtype'] == 'BF16':
            v = (np.frombuffer(raw, dtype='<u2').astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        else:
            raise ValueError(f'{path}: dtype {e["dtype"]}')
        out[name] = torch.from_numpy(v.reshape(e['shape']).copy())
    return out


def read_dir(d):
    single = os.path.join(d, 'model.safetensors')
    if os.path.exists(single):
        return read_safetensors(single)
    with open(os.path.join(d, 'model.safetensors.index.json')) as f:
        shards = sorted(set(json.load(f)['weight_map'].values()))
    w = {}
    for s in shards:
        w.update(read_safetensors(os.path.join(d, s)))
    return w


def inv_frequencies(cfg, hd):
    """modeling_rope_utils: default, linear and llama3 frequencies."""
    theta = cfg.get('rope_theta', 10000.0)
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    rs = cfg.get('rope_scaling')
    if rs is None:
        return inv
    kind = rs.get('rope_type', rs.get('type'))
    if kind == 'linear':
        return inv / rs['factor']
    assert kind == 'llama3', kind
    factor, low, high, old = rs['factor'], rs['low_freq_factor'], rs['high_freq_factor'], rs['original_max_position_embeddings']
    low_wavelen, high_wavelen = old / low, old / high
    wavelen = 2 * math.pi / inv
    scaled = torch.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, scaled)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rms(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def forward(cfg, w, tokens):
    D = cfg['hidden_size']
    H = cfg['num_attention_heads']
    KV = cfg.get('num_key_value_heads', H)
    hd = cfg.get('head_dim') or D // H
    eps = cfg['rms_norm_eps']
    T = len(tokens)
    pos = torch.arange(T, dtype=torch.float64)
    freqs = torch.outer(pos, inv_frequencies(cfg, hd))
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()  # [T, hd]
    mask = torch.full((T, T), float('-inf'), dtype=torch.float64).triu(1)

    def lin(x, p):
        y = x @ w[p + '.weight'].T
        return y + w[p + '.bias'] if p + '.bias' in w else y

    x = w['model.embed_tokens.weight'][tokens]
    for l in range(cfg['num_hidden_layers']):
        p = f'model.layers.{l}'
        h = rms(x, w[p + '.input_layernorm.weight'], eps)
        q = lin(h, p + '.self_attn.q_proj').view(T, H, hd).transpose(0, 1)
        k = lin(h, p + '.self_attn.k_proj').view(T, KV, hd).transpose(0, 1)
        v = lin(h, p + '.self_attn.v_proj').view(T, KV, hd).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=0)
        v = v.repeat_interleave(H // KV, dim=0)
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd) + mask, dim=-1)
        a = (att @ v).transpose(0, 1).reshape(T, H * hd)
        x = x + lin(a, p + '.self_attn.o_proj')
        h = rms(x, w[p + '.post_attention_layernorm.weight'], eps)
        g = lin(h, p + '.mlp.gate_proj')
        x = x + lin(torch.nn.functional.silu(g) * lin(h, p + '.mlp.up_proj'), p + '.mlp.down_proj')
    x = rms(x, w['model.norm.weight'], eps)
    head = w.get('lm_head.weight', w['model.embed_tokens.weight'])
    return x @ head.T  # [T, vocab]


def main():
    root, out = sys.argv[1], sys.argv[2]
    golden = {}
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        with open(os.path.join(d, 'config.json')) as f:
            cfg = json.load(f)
        with open(os.path.join(d, 'tokens.json')) as f:
            tokens = json.load(f)
        logits = forward(cfg, read_dir(d), tokens).numpy().astype('<f4')
        golden[name] = {'tokens': tokens, 'vocab': logits.shape[1], 'logits_f32_base64': base64.b64encode(logits.tobytes()).decode()}
    with open(out, 'w') as f:
        json.dump({'script': 'scripts/golden-logits.py', 'torch': torch.__version__, 'cases': golden}, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
    main()
