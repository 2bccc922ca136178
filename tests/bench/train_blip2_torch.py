#!/usr/bin/env python3
"""PyTorch side of `npm run bench:train` for BLIP-2: the same LoRA training step as Lenslab's VLM trainer on a
Blip2ForConditionalGeneration of the same shape with random weights, in plain torch (Debian torch 1.13, float32):
the frozen vision model and Q-Former (tests/fixtures/models/blip2_reference.py, written from modeling_blip_2.py)
under no_grad each step, the query outputs in the image-token positions, the OPT decoder with LoRA (B = 0 init) on
the target modules (q_proj, k_proj, v_proj, out_proj as o_proj), shifted cross-entropy over the answer tokens,
clip 1.0, torch.optim.AdamW.

Usage: train_blip2_torch.py '<json config>' -> one JSON line {"ms": [...], "peak_rss": bytes, "threads": n}
config: specs (file: [[name, shape], ...]), config (config.json path), B, T, answer_tokens, rank, alpha, targets,
        steps, warmup, threads
"""
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'models'))
from blip2_reference import qformer, vision  # noqa: E402

torch.set_default_dtype(torch.float32)


def main():
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    mc = json.load(open(cfg["config"]))
    vc, qc, tc = mc["vision_config"], mc["qformer_config"], mc["text_config"]
    W = {}
    for name, shape in json.load(open(cfg["specs"])):
        norm = name.endswith(".weight") and "norm" in name.lower()
        W[name] = torch.ones(shape) if norm else torch.randn(shape) * 0.02
    B, T = cfg["B"], cfg["T"]
    D = tc["hidden_size"]
    H = tc["num_attention_heads"]
    hd = D // H
    V = tc["vocab_size"]
    p = "language_model.model.decoder."
    E = W[p + "embed_tokens.weight"]
    r, scaling = cfg["rank"], cfg["alpha"] / cfg["rank"]
    names = {"q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj", "o_proj": "self_attn.out_proj"}
    lora = {}
    for li in range(tc["num_hidden_layers"]):
        for t in cfg["targets"]:
            a = (torch.rand(r, D) * 2 - 1) / math.sqrt(D)
            lora[(li, names[t])] = (a.requires_grad_(True), torch.zeros(D, r, requires_grad=True))
    params = [x for ab in lora.values() for x in ab]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)

    def lin(li, L, name, x):
        y = F.linear(x, W[L + name + ".weight"], W[L + name + ".bias"])
        ab = lora.get((li, name))
        if ab is not None:
            y = y + scaling * ((x @ ab[0].t()) @ ab[1].t())
        return y

    def ln(name, x):
        return F.layer_norm(x, (D,), W[name + ".weight"], W[name + ".bias"], 1e-5)

    causal = torch.triu(torch.full((T, T), float("-inf")), 1)[None, None]
    pos = torch.arange(T)[None].expand(B, T) + 2

    def decoder(emb):
        x = emb + W[p + "embed_positions.weight"][pos]
        for li in range(tc["num_hidden_layers"]):
            L = p + "layers.%d." % li
            h = ln(L + "self_attn_layer_norm", x)
            q = (lin(li, L, "self_attn.q_proj", h) * hd ** -0.5).view(B, T, H, hd).transpose(1, 2)
            k = lin(li, L, "self_attn.k_proj", h).view(B, T, H, hd).transpose(1, 2)
            v = lin(li, L, "self_attn.v_proj", h).view(B, T, H, hd).transpose(1, 2)
            a = torch.softmax(q @ k.transpose(-1, -2) + causal, -1) @ v
            x = x + lin(li, L, "self_attn.out_proj", a.transpose(1, 2).reshape(B, T, D))
            h = ln(L + "final_layer_norm", x)
            x = x + F.linear(torch.relu(F.linear(h, W[L + "fc1.weight"], W[L + "fc1.bias"])), W[L + "fc2.weight"], W[L + "fc2.bias"])
        return ln(p + "final_layer_norm", x) @ E.t()

    nq = mc["num_query_tokens"]
    ids = torch.randint(5, V, (B, T))
    img_pos = torch.zeros(B, T, dtype=torch.bool)
    img_pos[:, :nq] = True
    labels = torch.full((B, T), -100)
    labels[:, T - cfg["answer_tokens"]:] = ids[:, T - cfg["answer_tokens"]:]
    S = vc["image_size"]
    px = torch.randn(B, 3, S, S)

    times, losses = [], []
    for i in range(cfg["warmup"] + cfg["steps"]):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            feats = qformer(W, qc, vision(W, vc, px))  # frozen vision model, Q-Former and projection (method lora)
        emb = E[ids].clone()
        emb[img_pos] = feats.reshape(-1, D)
        logits = decoder(emb)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        losses.append(float(loss))
        if i >= cfg["warmup"]:
            times.append(dt * 1000)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
    print(json.dumps({"ms": times, "losses": losses, "peak_rss": peak, "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
