#!/usr/bin/env python3
"""PyTorch side of `npm run bench:engine`: the same LoRA transformer-block training step as Lenslab's
(tests/fixtures/engine/make_fixtures.py block_loss: RMSNorm, causal GQA attention with rotary and padding mask,
SwiGLU MLP, frozen LM head, cross-entropy; LoRA on q/k/v/o; clip 1.0; torch.optim.AdamW) in float32.

Usage: engine_torch.py '<json config>'  -> prints one JSON line {"ms": [...per step...], "blas": "...", "threads": n}
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures", "engine"))

import torch  # noqa: E402
import make_fixtures as mf  # noqa: E402


def main():
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    ids, attn_mask, labels, frozen, init = mf.block_tensors(cfg, dtype=torch.float32)
    params = {k: v.clone().requires_grad_(True) for k, v in init.items()}
    opt = torch.optim.AdamW(list(params.values()), lr=1e-4, weight_decay=0.01)
    times = []
    losses = []
    for i in range(cfg["warmup"] + cfg["steps"]):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = mf.block_loss(cfg, params, frozen, ids, attn_mask, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        losses.append(float(loss))
        if i >= cfg["warmup"]:
            times.append(dt * 1000)
    blas = "unknown"
    with open("/proc/self/maps") as f:
        for line in f:
            if "blas" in line or "mkl" in line:
                blas = line.split()[-1]
                break
    print(json.dumps({"ms": times, "losses": losses, "blas": blas, "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
