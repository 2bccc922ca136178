#!/usr/bin/env python3
"""Dev script (not run by tests): an independent Python rendering of the coco-caption / pycocoevalcap formulas for
corpus BLEU (option='closest') and CIDEr-D, applied to the corpus below. Its output is pasted into metrics.test.ts.
Written from the published formulas; pycocoevalcap itself is not installed here. Differences from pycocoevalcap:
none in the math except its tiny/small epsilons (1e-15 / 1e-9) in BLEU, which shift results by < 1e-8.
Usage: python3 tests/eval/reference_metrics.py"""
import json, math
from collections import defaultdict

CORPUS = [
    ("a man is riding a horse on the beach", ["a man rides a horse on the beach", "a person riding a horse near the ocean", "man on a horse at the beach"]),
    ("two dogs play in the snow", ["two dogs are playing in the snow", "a pair of dogs playing in snow"]),
    ("a red car", ["a red car parked on the street", "a small red car on a road", "red car next to a curb"]),
    ("a plate of food with broccoli", ["a plate with broccoli and rice", "a white plate of food with broccoli", "food on a plate"]),
]

def precook(words, n=4):
    counts = defaultdict(int)
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            counts[tuple(words[i:i + k])] += 1
    return counts

def bleu(corpus, n=4):
    correct = [0] * n; guess = [0] * n; testlen = 0; reflen = 0
    for hyp, refs in corpus:
        h = hyp.split(); rs = [r.split() for r in refs]
        maxc = {}
        for r in rs:
            for g, c in precook(r, n).items():
                maxc[g] = max(maxc.get(g, 0), c)
        for g, c in precook(h, n).items():
            correct[len(g) - 1] += min(maxc.get(g, 0), c)
        for k in range(n):
            guess[k] += max(0, len(h) - k)
        testlen += len(h)
        reflen += min((abs(len(r) - len(h)), len(r)) for r in rs)[1]
    b = 1.0; out = []
    for k in range(n):
        b *= correct[k] / guess[k]
        out.append(b ** (1.0 / (k + 1)))
    ratio = testlen / reflen
    bp = math.exp(1 - 1 / ratio) if ratio < 1 else 1.0
    return [x * bp for x in out], correct, guess, testlen, reflen

def cider(corpus, n=4, sigma=6.0):
    crefs = [[precook(r.split(), n) for r in refs] for _, refs in corpus]
    ctest = [precook(h.split(), n) for h, _ in corpus]
    df = defaultdict(float)
    for refs in crefs:
        for g in set(g for r in refs for g in r):
            df[g] += 1
    ref_len = math.log(float(len(crefs)))
    def vec(cnts):
        v = [defaultdict(float) for _ in range(n)]; norm = [0.0] * n; length = 0
        for g, tf in cnts.items():
            d = math.log(max(1.0, df[g])); k = len(g) - 1
            v[k][g] = float(tf) * (ref_len - d); norm[k] += v[k][g] ** 2
            if k == 1: length += tf
        return v, [math.sqrt(x) for x in norm], length
    def sim(vh, vr, nh, nr, lh, lr):
        delta = float(lh - lr); val = [0.0] * n
        for k in range(n):
            for g in vh[k]:
                val[k] += min(vh[k][g], vr[k][g]) * vr[k][g]
            if nh[k] != 0 and nr[k] != 0:
                val[k] /= nh[k] * nr[k]
            val[k] *= math.e ** (-(delta ** 2) / (2 * sigma ** 2))
        return val
    scores = []
    for t, refs in zip(ctest, crefs):
        vh, nh, lh = vec(t); acc = [0.0] * n
        for r in refs:
            vr, nr, lr = vec(r)
            acc = [a + b for a, b in zip(acc, sim(vh, vr, nh, nr, lh, lr))]
        scores.append(sum(acc) / n / len(refs) * 10.0)
    return sum(scores) / len(scores), scores

b, correct, guess, tl, rl = bleu(CORPUS)
c, per = cider(CORPUS)
print(json.dumps({"bleu1to4": b, "correct": correct, "guess": guess, "testlen": tl, "reflen": rl, "cider": c, "ciderPerItem": per}, indent=1))
