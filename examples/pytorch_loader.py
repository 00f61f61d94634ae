#!/usr/bin/env python3
"""Train-ready PyTorch loader over a pictofs mount.

    python3 examples/pytorch_loader.py /mnt/pictograph/shapes-demo

reads <dataset>/dataset.json for the class list, walks <dataset>/images, and
pairs every image with <dataset>/annotations/<same path>.json. Each item is
(image tensor, {"boxes": Tensor[N,4] xyxy, "labels": Tensor[N]}), the target
format of torchvision's detection models.

With --check it runs one shuffled epoch with num_workers=4, decodes every
image with PIL, parses every annotation, verifies that every box lies inside
its image, and exits non-zero on any problem: the test suite runs it.

It is also a module: the benchmark (go run ./bench) imports PictographDataset
and times what ships. Each item's files are read by read() (whole, in one go)
and decoded by decode(), so a subclass can time, hash or retry the reads.
"""
import argparse
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


class PictographDataset(Dataset):
    def __init__(self, root, resize=None):
        self.root = root
        with open(os.path.join(root, "dataset.json")) as f:
            meta = json.load(f)
        self.classes = [c["name"] for c in meta.get("classes") or []]
        self.class_index = {name: i for i, name in enumerate(self.classes)}
        images = os.path.join(root, "images")
        self.items = []
        for dirpath, _, files in os.walk(images):
            for name in sorted(files):
                if os.path.splitext(name)[1].lower() in IMAGE_EXTS:
                    self.items.append(os.path.relpath(os.path.join(dirpath, name), images))
        self.items.sort()
        self.resize = resize

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        rel = self.items[i]
        image_bytes, doc_bytes = self.read(rel)
        return self.decode(rel, image_bytes, doc_bytes)

    def read(self, rel):
        """Returns the bytes of images/<rel> and of annotations/<rel>.json: each file read whole, in one go."""
        with open(os.path.join(self.root, "images", rel), "rb") as f:
            image_bytes = f.read()
        with open(os.path.join(self.root, "annotations", rel + ".json"), "rb") as f:
            doc_bytes = f.read()
        return image_bytes, doc_bytes

    def decode(self, rel, image_bytes, doc_bytes):
        """Decodes an item read by read() into (image tensor, target)."""
        with Image.open(io.BytesIO(image_bytes)) as im:
            im = im.convert("RGB")
            width, height = im.size
            if self.resize:
                im = im.resize((self.resize, self.resize))
            pixels = pil_to_tensor(im)
        doc = json.loads(doc_bytes)
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
            "size": torch.tensor([width, height]),
            "path": rel,
        }
        return pixels, target


def collate(batch):
    return [b[0] for b in batch], [b[1] for b in batch]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", help="a dataset folder on a pictofs mount")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--check", action="store_true", help="verify every image and annotation; exit 1 on a problem")
    args = ap.parse_args()

    ds = PictographDataset(args.dataset)
    if len(ds) == 0:
        print(f"no images under {args.dataset}/images", file=sys.stderr)
        return 1
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=args.workers, collate_fn=collate)
    problems = 0
    for epoch in range(args.epochs):
        start = time.monotonic()
        first = None
        seen, boxes = 0, 0
        for images, targets in loader:
            if first is None:
                first = time.monotonic() - start
            for img, tgt in zip(images, targets):
                seen += 1
                boxes += len(tgt["boxes"])
                w, h = tgt["size"].tolist()
                if img.shape[0] != 3 or img.shape[1] != h or img.shape[2] != w:
                    problems += 1
                    print(f"{tgt['path']}: decoded shape {tuple(img.shape)}, want (3, {h}, {w})", file=sys.stderr)
                for (x0, y0, x1, y1), label in zip(tgt["boxes"].tolist(), tgt["labels"].tolist()):
                    if x0 < 0 or y0 < 0 or x1 > w or y1 > h or x1 <= x0 or y1 <= y0:
                        problems += 1
                        print(f"{tgt['path']}: box {(x0, y0, x1, y1)} outside {w}x{h}", file=sys.stderr)
                    if label < 0:
                        problems += 1
                        print(f"{tgt['path']}: label not in dataset.json classes", file=sys.stderr)
        took = time.monotonic() - start
        print(f"epoch {epoch + 1}: {seen} images, {boxes} boxes, first batch {first:.3f}s, total {took:.3f}s "
              f"({seen / took:.0f} images/s)")
        if seen != len(ds):
            problems += 1
            print(f"epoch saw {seen} images, want {len(ds)}", file=sys.stderr)
    if args.check and problems:
        print(f"{problems} problems", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
