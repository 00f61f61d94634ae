#!/usr/bin/env python3
"""The PyTorch epoch of the pictofs benchmark harness (go run ./bench).

    /usr/bin/python3 bench/workload.py ROOT [--workers 4] [--batch-size 32]

ROOT is a dataset folder laid out as on a pictofs mount: dataset.json,
images/<dir>/<file> and annotations/<dir>/<file>.json. The epoch mirrors
examples/pytorch_loader.py: a shuffled DataLoader with num_workers worker
processes walks images/, decodes every image with PIL and parses its
annotation document. It prints one JSON line:

    {"images": N, "boxes": B, "bytes": total bytes read,
     "first_batch_s": ..., "total_s": ..., "digest": "<sha256 hex>"}

Timing starts before the walk of images/ (listing is part of the epoch) and
after `import torch`. digest is the SHA-256 of the sorted lines
"<relpath> <sha256 of the image> <sha256 of the annotation document>", the
same digest the harness's plain reader computes, so the harness can check
that every system served every byte right. Any error exits non-zero.
"""
import argparse
import hashlib
import io
import json
import os
import sys
import time

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.functional import pil_to_tensor

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class EpochDataset(Dataset):
    def __init__(self, root):
        self.root = root
        with open(os.path.join(root, "dataset.json")) as f:
            meta = json.load(f)
        self.class_index = {c["name"]: i for i, c in enumerate(meta.get("classes") or [])}
        images = os.path.join(root, "images")
        self.items = []
        for dirpath, _, files in os.walk(images):
            for name in files:
                if os.path.splitext(name)[1].lower() in IMAGE_EXTS:
                    self.items.append(os.path.relpath(os.path.join(dirpath, name), images))
        self.items.sort()

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        rel = self.items[i]
        with open(os.path.join(self.root, "images", rel), "rb") as f:
            data = f.read()
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert("RGB")
            width, height = im.size
            pixels = pil_to_tensor(im)
        with open(os.path.join(self.root, "annotations", rel + ".json"), "rb") as f:
            raw = f.read()
        doc = json.loads(raw)
        boxes, labels = [], []
        for a in doc.get("annotations", []):
            bb = a.get("bounding_box")
            if not bb:
                continue
            boxes.append([bb["x"], bb["y"], bb["x"] + bb["w"], bb["y"] + bb["h"]])
            labels.append(self.class_index.get(a.get("name"), -1))
        target = {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "size": (width, height),
            "line": f"{rel} {hashlib.sha256(data).hexdigest()} {hashlib.sha256(raw).hexdigest()}",
            "bytes": len(data) + len(raw),
        }
        return pixels, target


def collate(batch):
    return [b[0] for b in batch], [b[1] for b in batch]


def warm_up():
    """Loads PIL's codecs and the torch ops the epoch uses before the clock
    starts, so that a dropped page cache slows the data reads, not imports."""
    for fmt in ("PNG", "JPEG"):
        buf = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buf, fmt)
        buf.seek(0)
        with Image.open(buf) as im:
            pil_to_tensor(im.convert("RGB"))
    torch.tensor([[0.0, 0.0, 1.0, 1.0]], dtype=torch.float32).reshape(-1, 4)
    (torch.tensor([0], dtype=torch.int64) < 0).any()
    json.loads(json.dumps({"annotations": []}))
    hashlib.sha256(b"").hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    warm_up()
    start = time.monotonic()
    ds = EpochDataset(args.root)
    if len(ds) == 0:
        print(f"no images under {args.root}/images", file=sys.stderr)
        return 1
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                        collate_fn=collate)
    first = None
    lines, nbytes, boxes, problems = [], 0, 0, 0
    for images, targets in loader:
        if first is None:
            first = time.monotonic() - start
        for img, tgt in zip(images, targets):
            w, h = tgt["size"]
            if img.shape[0] != 3 or img.shape[1] != h or img.shape[2] != w:
                problems += 1
                print(f"{tgt['line'].split()[0]}: decoded shape {tuple(img.shape)}, want (3, {h}, {w})",
                      file=sys.stderr)
            if (tgt["labels"] < 0).any():
                problems += 1
                print(f"{tgt['line'].split()[0]}: label not in dataset.json classes", file=sys.stderr)
            boxes += len(tgt["boxes"])
            lines.append(tgt["line"])
            nbytes += tgt["bytes"]
    total = time.monotonic() - start
    lines.sort()
    digest = hashlib.sha256("".join(line + "\n" for line in lines).encode()).hexdigest()
    print(json.dumps({"images": len(lines), "boxes": boxes, "bytes": nbytes, "first_batch_s": first,
                      "total_s": total, "digest": digest}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
