#!/usr/bin/env python3
"""Perplexity against the number of replaced layers for plain SA, LiSA alignment only and full LiSA.

For each count N: the N layers with the lowest fitted KL of the full LiSA fit (calibrate lisa --count N,
reusing the fit's checkpoint), the alignment-only fit at the same layers (--layers), and Shared Attention
plans over the same layers (each run of consecutive layers a..b reuses layer a-1). Each plan's perplexity
on the evaluation text is measured with `layershare ppl --backend cpu`. Prints a Markdown table.

    tools/lisa_table.py --full-dir D1 --alignment-dir D2 --counts 2,4,8 -- <fit options of calibrate lisa>
"""
import argparse
import json
import re
import subprocess
import sys


def run(cmd):
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out.stdout


def perplexity(binary, plan, text, tokens):
    cmd = [binary, "ppl", "--backend", "cpu", "--file", text, "--window", "512", "--score-tokens", str(tokens)]
    if plan:
        cmd += ["--plan", plan]
    m = re.search(r"perplexity: ([0-9.]+)", run(cmd))
    return float(m.group(1))


def runs(layers):
    spans, start = [], layers[0]
    for a, b in zip(layers, layers[1:] + [None]):
        if b != a + 1:
            spans.append(f"{start}-{a}")
            start = b
    return ",".join(spans)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=".build/release/layershare")
    ap.add_argument("--full-dir", required=True)
    ap.add_argument("--alignment-dir", required=True)
    ap.add_argument("--counts", default="2,4,8,12,15,18")
    ap.add_argument("--eval-file", default="/usr/share/common-licenses/GPL-3")
    ap.add_argument("--eval-tokens", type=int, default=4096)
    ap.add_argument("fit", nargs=argparse.REMAINDER, help="-- then calibrate lisa's fit options (the same as the fits')")
    a = ap.parse_args()
    fit = [x for x in a.fit if x != "--"]
    base = perplexity(a.binary, None, a.eval_file, a.eval_tokens)
    rows = [("baseline", 0, [], base, base, base)]
    for n in [int(x) for x in a.counts.split(",")]:
        run([a.binary, "calibrate", "lisa", *fit, "--count", str(n), "--name", f"full-{n}", "--output", a.full_dir])
        full_plan = f"{a.full_dir}/full-{n}.json"
        layers = sorted(json.load(open(full_plan))["lisa"]["layers"])
        spec = ",".join(map(str, layers))
        run([a.binary, "calibrate", "lisa", "--variant", "alignment", *strip_full_only(fit), "--layers", spec, "--name", f"alignment-{n}", "--output", a.alignment_dir])
        sa_plan = f"{a.full_dir}/sa-{n}.json"
        run([a.binary, "plan", "sa", "--spans", runs(layers), "--output", sa_plan])
        values = [perplexity(a.binary, p, a.eval_file, a.eval_tokens) for p in (sa_plan, f"{a.alignment_dir}/alignment-{n}.json", full_plan)]
        rows.append((spec, n, layers, *values))
        print(f"N={n}: layers {spec}: SA {values[0]:.3f}, alignment {values[1]:.3f}, LiSA {values[2]:.3f}", file=sys.stderr, flush=True)
    print("| replaced | layers | plain SA | Δ | LiSA alignment only | Δ | LiSA (full) | Δ |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for spec, n, layers, sa, al, full in rows:
        d = lambda v: "—" if n == 0 else f"{(v / base - 1) * 100:+.1f}%"
        print(f"| {n} | {spec or '—'} | {sa:.3f} | {d(sa)} | {al:.3f} | {d(al)} | {full:.3f} | {d(full)} |")


def strip_full_only(fit):
    """The fit options without those that only apply to the low-rank term (the alignment variant rejects them)."""
    out, skip = [], False
    for x in fit:
        if skip:
            skip = False
            continue
        if x in ("--query-init", "--rank", "--ffn-width", "--lowrank-lr"):
            skip = True
            continue
        if x == "--no-rope-select":
            continue
        out.append(x)
    return out


if __name__ == "__main__":
    main()
