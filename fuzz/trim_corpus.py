#!/usr/bin/env python3
"""Folds a fuzz run's finds into a committed corpus, kept small.

usage: python3 fuzz/trim_corpus.py TARGET [CAP]    (CAP default 300)

After `scripts/fuzz.sh` has left new inputs in fuzz/corpus-new/TARGET (and
built fuzz/target/.../TARGET), this
  1. merges fuzz/corpus/TARGET and fuzz/corpus-new/TARGET with libFuzzer's
     set-cover merge on coverage edges (-merge=1 -set_cover_merge=1
     -use_counters=0),
  2. measures the edges of each input of the result (-merge_control_file),
  3. keeps every seed (seed-*, fuzz/make_seeds.py) and adds, greedily, the
     input that covers the most edges not yet covered, until CAP inputs or
     no gain,
and replaces fuzz/corpus/TARGET with that set. Prints how many edges of the
merged corpus the kept set covers.
"""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    target = sys.argv[1]
    cap = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    binary = os.path.join(HERE, "target", "x86_64-unknown-linux-gnu", "release", target)
    corpus = os.path.join(HERE, "corpus", target)
    new = os.path.join(HERE, "corpus-new", target)
    flags = ["-use_counters=0", "-use_value_profile=0"]
    with tempfile.TemporaryDirectory() as tmp:
        merged, pool, empty = (os.path.join(tmp, d) for d in ("merged", "pool", "empty"))
        for d in (merged, pool, empty):
            os.mkdir(d)
        subprocess.run([binary, "-merge=1", "-set_cover_merge=1", *flags, merged, corpus]
                       + ([new] if os.path.isdir(new) else []), check=True, capture_output=True)
        for d in (corpus, merged):
            for f in os.listdir(d):
                if not os.path.exists(os.path.join(pool, f)):
                    shutil.copy(os.path.join(d, f), pool)
        ctl = os.path.join(tmp, "control")
        subprocess.run([binary, "-merge=1", *flags, f"-merge_control_file={ctl}", empty, pool],
                       check=True, capture_output=True)
        lines = open(ctl).read().split("\n")
        n = int(lines[0])
        paths = lines[2:2 + n]
        cov = {}
        for line in lines[2 + n:]:
            if line.startswith("COV "):
                parts = line.split()
                cov[int(parts[1])] = set(parts[2:])
        everything = set().union(*cov.values()) if cov else set()
        chosen = [i for i, p in enumerate(paths) if os.path.basename(p).startswith("seed-")]
        covered = set().union(*(cov.get(i, set()) for i in chosen)) if chosen else set()
        rest = [i for i in range(n) if i not in set(chosen)]
        while len(chosen) < cap and rest:
            best = max(rest, key=lambda i: (len(cov.get(i, set()) - covered), -os.path.getsize(paths[i])))
            if not cov.get(best, set()) - covered:
                break
            chosen.append(best)
            covered |= cov[best]
            rest.remove(best)
        shutil.rmtree(corpus)
        os.mkdir(corpus)
        for i in chosen:
            shutil.copy(paths[i], corpus)
    print(f"{target}: kept {len(chosen)} inputs covering {len(covered)} of {len(everything)} edges")


if __name__ == "__main__":
    main()
