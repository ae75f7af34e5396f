#!/usr/bin/env python3
"""The char_lm example's model, trained in PyTorch on the same split and the same batches.

Usage (after `cargo run --release --example char_lm`, which writes the run folder):
  /work/venv/bin/python scripts/char_lm_torch.py --run out/char_lm
  cargo run --release --example char_lm -- --figure out/char_lm/torch_curve.json

Reads from the run folder
  split.json        the text slice (first `chars` characters of data/kjv.txt), the vocabulary
                    in id order, the train/validation blocks, every epoch's window order, and
                    the hyper-parameters;
  init.safetensors  gradlab's initial weights under PyTorch state_dict keys, loaded here with
                    load_state_dict(strict=True), so both runs start from the same weights;
and writes torch_curve.json: validation (and train) bits per character per epoch, tokens/s.

Same model (nn.Embedding, nn.TransformerEncoderLayer with norm_first, GELU, no dropout,
causal mask; or nn.LSTM), same loss, AdamW, CosineAnnealingLR stepped per batch to lr/10,
clip_grad_norm_ at 1, batches taken from the same shuffled window order. Kept outside the
build: the project never depends on Python.
"""
import argparse
import json
import math
import struct
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent


class Gpt(nn.Module):
    def __init__(self, vocab, dim, layers, heads, context):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(context, dim)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim, heads, 4 * dim, dropout=0.0, activation="gelu",
                batch_first=True, norm_first=True,
            )
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, ids):
        n = ids.shape[1]
        x = self.tok(ids) + self.pos(torch.arange(n))
        # A boolean mask, True = may not attend, as gradlab's BoolMask::causal.
        mask = torch.ones(n, n, dtype=torch.bool).triu(1)
        for block in self.blocks:
            x = block(x, src_mask=mask)
        return self.head(self.norm(x))


class LstmLm(nn.Module):
    def __init__(self, vocab, dim, layers):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, dim, num_layers=layers, batch_first=True)
        self.head = nn.Linear(dim, vocab)

    def forward(self, ids):
        h, _ = self.lstm(self.emb(ids))
        return self.head(h)


def read_safetensors(path):
    """name -> tensor, for F32 files (the format: u64 header length, JSON header, data)."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{name}: dtype {info['dtype']}, expected F32")
        a, b = info["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype="<f4").reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


def windows(blocks, context, stride):
    return [s for a, b in blocks for s in range(a, b - context, stride)]


def batch_tensors(tokens, starts, context):
    idx = torch.tensor(starts)[:, None] + torch.arange(context + 1)[None, :]
    w = tokens[idx]
    return w[:, :-1], w[:, 1:]


def evaluate(model, tokens, starts, context, batch):
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(starts), batch):
            x, y = batch_tensors(tokens, starts[i:i + batch], context)
            logits = model(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            total += loss.item() * y.numel()
            count += y.numel()
    model.train()
    return total / count


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="out/char_lm", help="the char_lm run folder")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run = Path(args.run)
    s = json.loads((run / "split.json").read_text())

    text = (ROOT / s["corpus"]).read_text(encoding="utf-8")[: s["chars"]]
    ids = {c: i for i, c in enumerate(s["vocab"])}
    tokens = torch.tensor([ids[c] for c in text], dtype=torch.long)
    ctx, stride, bs = s["context"], s["stride"], s["batch"]
    train = windows(s["train_blocks"], ctx, stride)
    valid = windows(s["valid_blocks"], ctx, stride)
    for order in s["epoch_orders"]:
        assert sorted(order) == list(range(len(train))), "split.json: order/window mismatch"

    vocab = len(s["vocab"])
    if s["model"] == "transformer":
        model = Gpt(vocab, s["dim"], s["layers"], s["heads"], ctx)
    else:
        model = LstmLm(vocab, s["dim"], s["layers"])
    model.load_state_dict(read_safetensors(run / "init.safetensors"), strict=True)
    model.train()

    opt = torch.optim.AdamW(model.parameters(), lr=s["lr"], weight_decay=s["weight_decay"])
    per_epoch = math.ceil(len(train) / bs)
    total = max(1, s["epochs"] * per_epoch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=s["eta_min"])
    print(f"torch {torch.__version__}, {args.threads} threads: {s['model']}, "
          f"{sum(p.numel() for p in model.parameters())} parameters, "
          f"{len(train)} train / {len(valid)} validation windows of {ctx}")

    curve = {"val_bits": [], "train_bits": [], "tokens_per_s": [], "torch": torch.__version__,
             "threads": args.threads}
    for epoch, order in enumerate(s["epoch_orders"], start=1):
        loss_sum, seen, t0 = 0.0, 0, time.perf_counter()
        for i in range(0, len(order), bs):
            x, y = batch_tensors(tokens, [train[j] for j in order[i:i + bs]], ctx)
            logits = model(x)
            loss = F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), s["clip_grad_norm"])
            opt.step()
            sched.step()
            loss_sum += loss.item() * y.numel()
            seen += y.numel()
        rate = seen / (time.perf_counter() - t0)
        train_bits = loss_sum / seen / math.log(2)
        val_bits = evaluate(model, tokens, valid, ctx, bs) / math.log(2)
        curve["val_bits"].append([epoch, val_bits])
        curve["train_bits"].append([epoch, train_bits])
        curve["tokens_per_s"].append([epoch, rate])
        print(f"epoch {epoch}: train {train_bits:.3f} bits/char, validation {val_bits:.3f} "
              f"bits/char, {rate:.0f} tokens/s", flush=True)
    out = run / "torch_curve.json"
    out.write_text(json.dumps(curve, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
