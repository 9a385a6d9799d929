#!/usr/bin/env python3
"""Summarize a py-spy `--format raw` profile (collapsed stacks): top functions by self and
total samples.  Usage: python bench/profile_top.py results/profiles/<run>.txt [N]"""

import collections
import sys


def main() -> None:
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    self_: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    n = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            c = int(count)
            n += c
            frames = stack.split(";")
            leaf = frames[-1]
            self_[leaf] += c
            for fr in set(frames):
                total[fr] += c
    print(f"{n} samples")
    print("-- self")
    for fr, c in self_.most_common(top):
        print(f"{100 * c / n:5.1f}%  {fr}")
    print("-- total")
    for fr, c in total.most_common(top):
        print(f"{100 * c / n:5.1f}%  {fr}")


if __name__ == "__main__":
    main()
