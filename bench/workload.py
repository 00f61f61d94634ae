#!/usr/bin/env python3
"""The PyTorch epoch of the pictofs benchmark harness (go run ./bench).

    /usr/bin/python3 bench/workload.py ROOT --loader examples/pytorch_loader.py
        [--workers 4] [--batch-size 32] [--tolerate-errors] [--lines-out FILE]

ROOT is a dataset folder laid out as on a pictofs mount: dataset.json,
images/<dir>/<file> and annotations/<dir>/<file>.json. The epoch is the one
examples/pytorch_loader.py ships: this script imports its PictographDataset
(from --loader) and runs a shuffled DataLoader with num_workers worker
processes over it, so every image is decoded with PIL and every annotation
document parsed exactly as the example does. The only addition is a hash of
the bytes each item's read() returned. It prints one JSON line:

    {"images": N, "boxes": B, "bytes": total bytes read, "first_batch_s": ...,
     "total_s": ..., "digest": "<sha256 hex>", "failed": {"EAGAIN": n, ...}}

Timing starts before the walk of images/ (listing is part of the epoch) and
after `import torch`. digest is the SHA-256 of the sorted lines
"<relpath> <sha256 of the image> <sha256 of the annotation document>", the
same digest the harness's plain reader computes, so the harness can check
that every system served every byte right; --lines-out writes those lines.
Any error exits non-zero, except that with --tolerate-errors an item whose
read fails with an OSError is counted in "failed" (by errno name) and
skipped.
"""
import argparse
import errno
import hashlib
import importlib.util
import io
import json
import sys
import time

import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms.functional import pil_to_tensor


def load_example(path):
    """Imports examples/pytorch_loader.py as the module pytorch_loader."""
    spec = importlib.util.spec_from_file_location("pytorch_loader", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["pytorch_loader"] = module
    spec.loader.exec_module(module)
    return module


def bench_dataset(base, tolerate_errors):
    class BenchDataset(base):
        """The example's dataset; each item also carries the hash line of what read() returned."""

        def __getitem__(self, i):
            rel = self.items[i]
            try:
                image_bytes, doc_bytes = self.read(rel)
            except OSError as e:
                if not tolerate_errors:
                    raise
                return None, {"path": rel, "error": errno.errorcode.get(e.errno, str(e.errno))}
            pixels, target = self.decode(rel, image_bytes, doc_bytes)
            target["line"] = (f"{rel} {hashlib.sha256(image_bytes).hexdigest()} "
                              f"{hashlib.sha256(doc_bytes).hexdigest()}")
            target["bytes"] = len(image_bytes) + len(doc_bytes)
            return pixels, target

    return BenchDataset


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
    ap.add_argument("--loader", required=True, help="path of examples/pytorch_loader.py")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--tolerate-errors", action="store_true", help="count failed reads instead of failing")
    ap.add_argument("--lines-out", help="write the sorted hash lines here")
    args = ap.parse_args()

    example = load_example(args.loader)
    dataset_class = bench_dataset(example.PictographDataset, args.tolerate_errors)
    warm_up()
    start = time.monotonic()
    ds = dataset_class(args.root)
    if len(ds) == 0:
        print(f"no images under {args.root}/images", file=sys.stderr)
        return 1
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                        collate_fn=example.collate)
    first = None
    lines, nbytes, boxes, problems, failed = [], 0, 0, 0, {}
    for images, targets in loader:
        if first is None:
            first = time.monotonic() - start
        for img, tgt in zip(images, targets):
            if img is None:
                failed[tgt["error"]] = failed.get(tgt["error"], 0) + 1
                continue
            w, h = tgt["size"].tolist()
            if img.shape[0] != 3 or img.shape[1] != h or img.shape[2] != w:
                problems += 1
                print(f"{tgt['path']}: decoded shape {tuple(img.shape)}, want (3, {h}, {w})", file=sys.stderr)
            if (tgt["labels"] < 0).any():
                problems += 1
                print(f"{tgt['path']}: label not in dataset.json classes", file=sys.stderr)
            boxes += len(tgt["boxes"])
            lines.append(tgt["line"])
            nbytes += tgt["bytes"]
    total = time.monotonic() - start
    lines.sort()
    text = "".join(line + "\n" for line in lines)
    if args.lines_out:
        with open(args.lines_out, "w") as f:
            f.write(text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    print(json.dumps({"images": len(lines), "boxes": boxes, "bytes": nbytes, "first_batch_s": first,
                      "total_s": total, "digest": digest, "failed": failed}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
