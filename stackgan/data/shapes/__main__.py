"""``python -m stackgan.data.shapes --out data/shapes --num-images 20000 --seed 0``"""

import argparse
import json

from .export import generate


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Render the synthetic Shapes dataset (captioned-folder format).")
    parser.add_argument("--out", required=True, help="output folder; train/, test/ and heldout/ go inside")
    parser.add_argument("--num-images", type=int, default=20000, help="train + test images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--num-heldout", type=int, default=None, help="held-out-pair images (default: num-images / 10)")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--workers", type=int, default=2, help="rendering processes")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    summary = generate(
        args.out, args.num_images, seed=args.seed, test_fraction=args.test_fraction,
        num_heldout=args.num_heldout, size=args.size, workers=args.workers, overwrite=args.overwrite,
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
