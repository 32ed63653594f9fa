#!/usr/bin/env python3
"""Load check of `layershare serve`: a bounded number of completion requests from K concurrent
clients over raw HTTP; prints requests/s, latency percentiles and tokens/s as a Markdown table.

    tools/server_load.py [--binary B] [--backend vulkan|cpu] [--requests 48] [--concurrency 4]
                         [--max-tokens 32] [--stream] [--timeout 600]

Every request must be answered 200 with a usage count; the run fails (exit 1) otherwise or when it
takes longer than --timeout seconds. Requests are answered one at a time by the server (FIFO), so
latency grows with the concurrency while throughput stays that of one generation stream.
"""
import argparse
import concurrent.futures
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_harness import Server, default_binary  # noqa: E402

PROMPTS = ["The capital of France is", "Once upon a time", "Water boils at", "The best way to learn a language is",
           "In the year 2050,", "A good cup of coffee needs"]


def percentile(values, p):
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=default_binary())
    parser.add_argument("--backend", default="vulkan", choices=["vulkan", "cpu"])
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--stream", action="store_true", help="ask for server-sent events (latency = until [DONE])")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    if not (1 <= args.requests <= 100000 and 1 <= args.concurrency <= 256 and 1 <= args.max_tokens <= 4096):
        parser.error("--requests 1..100000, --concurrency 1..256, --max-tokens 1..4096")

    server = Server(args.binary, ["--backend", args.backend, "--ctx", "512", "--queue-limit", str(args.concurrency + 1)])
    failures = []

    def one(i):
        body = {"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": args.max_tokens, "temperature": 0.8, "seed": i,
                **({"stream": True, "stream_options": {"include_usage": True}} if args.stream else {})}
        t = time.time()
        status, _, payload = server.request("POST", "/v1/completions", body, timeout=args.timeout)
        elapsed = time.time() - t
        if status != 200:
            failures.append(f"request {i}: {status} {payload}")
            return elapsed, 0
        if args.stream:
            events = [json.loads(e[6:]) for e in payload.split("\n\n") if e.startswith("data: {")]
            tokens = next((e["usage"]["completion_tokens"] for e in events if e.get("usage")), None)
            if tokens is None or not payload.endswith("data: [DONE]\n\n"):
                failures.append(f"request {i}: incomplete stream {payload[-200:]!r}")
        else:
            tokens = payload["usage"]["completion_tokens"]
        return elapsed, tokens or 0

    try:
        one(0)  # warm-up: first-use costs (pipelines, caches) stay out of the figures
        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(one, range(args.requests), timeout=args.timeout))
        wall = time.time() - t0
    finally:
        server.stop()
    if failures:
        print("\n".join(failures[:10]))
        return 1
    latencies = [r[0] for r in results]
    tokens = sum(r[1] for r in results)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    print(f"machine: {os.cpu_count()} cores, {cpu}, {platform.machine()}; backend {args.backend}")
    print(f"command: tools/server_load.py --backend {args.backend} --requests {args.requests} --concurrency {args.concurrency} "
          f"--max-tokens {args.max_tokens}{' --stream' if args.stream else ''}")
    print()
    print("| requests | concurrency | max_tokens | stream | wall s | requests/s | p50 s | p90 s | p99 s | completion tokens/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.requests} | {args.concurrency} | {args.max_tokens} | {'yes' if args.stream else 'no'} | {wall:.1f} | "
          f"{args.requests / wall:.2f} | {percentile(latencies, 50):.2f} | {percentile(latencies, 90):.2f} | "
          f"{percentile(latencies, 99):.2f} | {tokens / wall:.1f} |")
    print(f"\nmean latency {statistics.mean(latencies):.2f} s; {tokens} completion tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
