#!/usr/bin/env python3
"""PyTorch side of `npm run bench:train`: the same LoRA training step as Lenslab's VLM trainer, in plain torch
(Debian torch 1.13, float32), on a LLaVA of the same shape with random weights:
CLIP-style vision tower (patch conv, class token, pre-LN, quick_gelu MLP) -> feature layer -1 minus the class
token -> MLP projector (gelu) -> image features scattered into the image-token positions -> LLaMA decoder (RMSNorm,
rotary, grouped KV heads, causal + padding mask, SwiGLU) -> untied LM head -> shifted cross-entropy over the answer
tokens; LoRA (B = 0 init) on the target modules, frozen everything else; clip 1.0; torch.optim.AdamW.

Usage: train_torch.py '<json config>' -> one JSON line {"ms": [...per step...], "peak_rss": bytes, "threads": n}
config: vision {hidden, layers, heads, inter, image, patch}, text {hidden, layers, heads, kv, inter, vocab},
        B, T, image_tokens, answer_tokens, rank, alpha, targets, steps, warmup, threads
"""
import json
import math
import resource
import sys
import time

import torch
import torch.nn.functional as F


def lora_linear(x, w, name, lora, scaling):
    y = x @ w.t()
    if name in lora:
        a, b = lora[name]
        y = y + scaling * ((x @ a.t()) @ b.t())
    return y


def main():
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    v, t = cfg["vision"], cfg["text"]
    B, T = cfg["B"], cfg["T"]
    std = 0.02
    P = (v["image"] // v["patch"]) ** 2

    def rnd(*shape):
        return torch.randn(*shape) * std

    frozen = {
        "patch": rnd(v["hidden"], 3, v["patch"], v["patch"]),
        "cls": rnd(v["hidden"]),
        "pos": rnd(P + 1, v["hidden"]),
        "pre_ln": (torch.ones(v["hidden"]), torch.zeros(v["hidden"])),
        "vlayers": [
            {
                "ln1": (torch.ones(v["hidden"]), torch.zeros(v["hidden"])),
                "ln2": (torch.ones(v["hidden"]), torch.zeros(v["hidden"])),
                "q": (rnd(v["hidden"], v["hidden"]), torch.zeros(v["hidden"])),
                "k": (rnd(v["hidden"], v["hidden"]), torch.zeros(v["hidden"])),
                "v": (rnd(v["hidden"], v["hidden"]), torch.zeros(v["hidden"])),
                "o": (rnd(v["hidden"], v["hidden"]), torch.zeros(v["hidden"])),
                "fc1": (rnd(v["inter"], v["hidden"]), torch.zeros(v["inter"])),
                "fc2": (rnd(v["hidden"], v["inter"]), torch.zeros(v["hidden"])),
            }
            for _ in range(v["layers"])
        ],
        "proj1": (rnd(t["hidden"], v["hidden"]), torch.zeros(t["hidden"])),
        "proj2": (rnd(t["hidden"], t["hidden"]), torch.zeros(t["hidden"])),
        "embed": rnd(t["vocab"], t["hidden"]),
        "layers": [],
        "norm": torch.ones(t["hidden"]),
        "head": rnd(t["vocab"], t["hidden"]),
    }
    hd = t["hidden"] // t["heads"]
    qd, kvd = t["heads"] * hd, t["kv"] * hd
    dims = {"q_proj": (t["hidden"], qd), "k_proj": (t["hidden"], kvd), "v_proj": (t["hidden"], kvd), "o_proj": (qd, t["hidden"]),
            "gate_proj": (t["hidden"], t["inter"]), "up_proj": (t["hidden"], t["inter"]), "down_proj": (t["inter"], t["hidden"])}
    for _ in range(t["layers"]):
        frozen["layers"].append({"in_norm": torch.ones(t["hidden"]), "post_norm": torch.ones(t["hidden"]),
                                 **{k: rnd(o, i) for k, (i, o) in dims.items()}})
    r, scaling = cfg["rank"], cfg["alpha"] / cfg["rank"]
    lora = {}
    for li in range(t["layers"]):
        for name in cfg["targets"]:
            i, o = dims[name]
            a = (torch.rand(r, i) * 2 - 1) / math.sqrt(i)
            lora[(li, name)] = (a.requires_grad_(True), torch.zeros(o, r, requires_grad=True))
    params = [p for ab in lora.values() for p in ab]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)

    inv = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
    pos = torch.arange(T).float()
    freqs = torch.outer(pos, inv)
    cos, sin = torch.cat([freqs, freqs], -1).cos(), torch.cat([freqs, freqs], -1).sin()

    def rope(x):  # x [B, H, T, hd]
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w

    def vision(px):
        f = frozen
        x = F.conv2d(px, f["patch"], stride=v["patch"]).flatten(2).transpose(1, 2)
        x = torch.cat([f["cls"].expand(x.shape[0], 1, -1), x], 1) + f["pos"]
        x = F.layer_norm(x, (v["hidden"],), *f["pre_ln"])
        H, vh = v["heads"], v["hidden"] // v["heads"]
        for L in f["vlayers"]:
            h = F.layer_norm(x, (v["hidden"],), *L["ln1"])
            q, k, vv = (F.linear(h, *L[n]).view(x.shape[0], -1, H, vh).transpose(1, 2) for n in ("q", "k", "v"))
            a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(vh), -1) @ vv
            x = x + F.linear(a.transpose(1, 2).reshape(x.shape[0], -1, v["hidden"]), *L["o"])
            h = F.layer_norm(x, (v["hidden"],), *L["ln2"])
            h = F.linear(h, *L["fc1"])
            x = x + F.linear(h * torch.sigmoid(1.702 * h), *L["fc2"])
        x = x[:, 1:]
        return F.linear(F.gelu(F.linear(x, *f["proj1"])), *f["proj2"])

    def decoder(emb, mask):
        f = frozen
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
        allowed = causal[None, None] & mask[:, None, None, :].bool()
        bias = torch.zeros(B, 1, T, T).masked_fill(~allowed, float("-inf"))
        x = emb
        rep = t["heads"] // t["kv"]
        for li, L in enumerate(f["layers"]):
            h = rms(x, L["in_norm"])
            ll = {n: lora[(li, n)] for n in cfg["targets"] if (li, n) in lora}
            q = lora_linear(h, L["q_proj"], "q_proj", ll, scaling).view(B, T, t["heads"], hd).transpose(1, 2)
            k = lora_linear(h, L["k_proj"], "k_proj", ll, scaling).view(B, T, t["kv"], hd).transpose(1, 2)
            vv = lora_linear(h, L["v_proj"], "v_proj", ll, scaling).view(B, T, t["kv"], hd).transpose(1, 2)
            q, k = rope(q), rope(k)
            k, vv = k.repeat_interleave(rep, 1), vv.repeat_interleave(rep, 1)
            a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + bias, -1) @ vv
            x = x + lora_linear(a.transpose(1, 2).reshape(B, T, qd), L["o_proj"], "o_proj", ll, scaling)
            h = rms(x, L["post_norm"])
            g = lora_linear(h, L["gate_proj"], "gate_proj", ll, scaling)
            u = lora_linear(h, L["up_proj"], "up_proj", ll, scaling)
            x = x + lora_linear(F.silu(g) * u, L["down_proj"], "down_proj", ll, scaling)
        return rms(x, f["norm"]) @ f["head"].t()

    n_img = cfg["image_tokens"]
    ids = torch.randint(5, t["vocab"], (B, T))
    img_pos = torch.zeros(B, T, dtype=torch.bool)
    img_pos[:, 2:2 + n_img] = True
    mask = torch.ones(B, T, dtype=torch.long)
    labels = torch.full((B, T), -100)
    labels[:, T - cfg["answer_tokens"]:] = ids[:, T - cfg["answer_tokens"]:]
    px = torch.randn(B, 3, v["image"], v["image"])

    times, losses = [], []
    for i in range(cfg["warmup"] + cfg["steps"]):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            feats = vision(px)  # frozen tower and projector: no gradient needed (method lora)
        emb = frozen["embed"][ids].clone()
        emb[img_pos] = feats.reshape(-1, t["hidden"])
        logits = decoder(emb, mask)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, t["vocab"]), labels[:, 1:].reshape(-1), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        losses.append(float(loss))
        if i >= cfg["warmup"]:
            times.append(dt * 1000)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # fallback; VmHWM excludes the parent's image
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
    print(json.dumps({"ms": times, "losses": losses, "peak_rss": peak, "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
