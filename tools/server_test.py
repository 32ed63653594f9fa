#!/usr/bin/env python3
"""End-to-end tests of `layershare serve`: the real `openai` client and raw HTTP against a server
on a free loopback port. Exits non-zero when any case fails (run by ServerTests in the Swift suite).

    tools/server_test.py [--binary .build/release/layershare] [--backend vulkan|cpu] [CASE...]
"""
import argparse
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_harness import Server, default_binary  # noqa: E402

import openai  # noqa: E402

CTX = 512
BODY_LIMIT = 65536
PROMPT = "The capital of France is"
QUESTION = "What is the capital of France?"
# Greedy decoding of this prompt counts on without an end token, so a long request runs to max_tokens
# unless it is cancelled.
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


class Suite:
    def __init__(self, args):
        self.args = args
        self.model_args = ["--backend", args.backend, "--ctx", str(CTX)]
        self.server = Server(args.binary, [*self.model_args, "--max-body-bytes", str(BODY_LIMIT), "-n", "16"])
        self.client = openai.OpenAI(base_url=self.server.url + "/v1", api_key="none", max_retries=0, timeout=120)
        status, _, models = self.server.request("GET", "/v1/models")
        check(status == 200, f"/v1/models: {status} {models}")
        self.model = models["data"][0]["id"]

    def generate(self, *args):
        """`layershare generate`'s text for the same model options (its trailing newline removed)."""
        r = subprocess.run([self.args.binary, "generate", *self.model_args, *args], capture_output=True, text=True, timeout=300)
        check(r.returncode == 0, f"generate {args} failed: {r.stderr}")
        check(r.stdout.endswith("\n"), f"generate output {r.stdout!r} lacks its newline")
        return r.stdout[:-1]

    # --- cases ------------------------------------------------------------------------------------

    def case_health_and_models(self):
        status, headers, body = self.server.request("GET", "/health")
        check(status == 200 and body == {"status": "ok", "model": self.model, "requests": 0}, f"/health: {status} {body}")
        check(headers.get("Content-Type", "").startswith("application/json"), f"/health content type {headers}")
        ids = [m.id for m in self.client.models.list().data]
        check(ids == [self.model] and self.model == "SmolLM2-135M-Instruct.Q4_1", f"models: {ids}")
        check(self.client.models.retrieve(self.model).id == self.model, "models.retrieve")

    def case_chat_whole_and_streamed(self):
        params = dict(model=self.model, messages=[{"role": "user", "content": QUESTION}], max_tokens=8, temperature=0)
        whole = self.client.chat.completions.create(**params)
        choice = whole.choices[0]
        check(whole.object == "chat.completion" and choice.message.role == "assistant", f"chat object: {whole}")
        check(len(choice.message.content) > 0 and choice.finish_reason in ("stop", "length"), f"chat choice: {choice}")
        u = whole.usage
        check(u.prompt_tokens > 5 and 1 <= u.completion_tokens <= 8 and u.total_tokens == u.prompt_tokens + u.completion_tokens,
              f"chat usage: {u}")
        chunks = list(self.client.chat.completions.create(**params, stream=True, stream_options={"include_usage": True}))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        check(text == choice.message.content, f"streamed chat {text!r} != whole {choice.message.content!r}")
        check(all(c.object == "chat.completion.chunk" for c in chunks), "chunk objects")
        check(chunks[0].choices[0].delta.role == "assistant", f"first chunk: {chunks[0]}")
        finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        check(finals == [choice.finish_reason], f"finish reasons in the stream: {finals}")
        check(not chunks[-1].choices and chunks[-1].usage.completion_tokens == u.completion_tokens
              and chunks[-1].usage.prompt_tokens == u.prompt_tokens, f"usage chunk: {chunks[-1]}")

    def case_completion_whole_and_streamed(self):
        whole = self.client.completions.create(model=self.model, prompt=PROMPT, max_tokens=6, temperature=0)
        check(whole.object == "text_completion", f"object: {whole.object}")
        text = whole.choices[0].text
        check(text.startswith(" Paris"), f"greedy completion {text!r}")
        check(whole.choices[0].finish_reason == "length" and whole.usage.completion_tokens == 6, f"{whole}")
        streamed = "".join(c.choices[0].text for c in self.client.completions.create(
            model=self.model, prompt=PROMPT, max_tokens=6, temperature=0, stream=True))
        check(streamed == text, f"streamed {streamed!r} != whole {text!r}")
        # The raw stream: data: lines, blank-line separated, ending with [DONE].
        status, headers, raw = self.server.request("POST", "/v1/completions", {"prompt": PROMPT, "max_tokens": 3, "temperature": 0,
                                                                               "stream": True})
        check(status == 200 and headers.get("Content-Type") == "text/event-stream", f"stream head: {status} {headers}")
        events = [e for e in raw.split("\n\n") if e]
        check(all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]", f"raw stream {raw!r}")
        last = json.loads(events[-2][len("data: "):])
        check(last["choices"][0]["finish_reason"] == "length", f"last chunk {last}")
        # A stop string ends the text before it, with finish_reason "stop".
        cut = text.index(" ", 2)
        stop = text[cut:cut + 3]
        stopped = self.client.completions.create(model=self.model, prompt=PROMPT, max_tokens=6, temperature=0, stop=[stop])
        check(stopped.choices[0].text == text[:cut] and stopped.choices[0].finish_reason == "stop",
              f"stop {stop!r}: {stopped.choices[0]}")

    def case_same_text_as_generate(self):
        cli = self.generate("-p", PROMPT, "-n", "12", "--temperature", "0.9", "--seed", "42")
        served = self.client.completions.create(model=self.model, prompt=PROMPT, max_tokens=12, temperature=0.9, seed=42)
        check(served.choices[0].text == cli, f"completion {served.choices[0].text!r} != generate {cli!r}")
        cli_chat = self.generate("--chat", "-p", QUESTION, "-n", "12", "--temperature", "0.9", "--seed", "7")
        chat = self.client.chat.completions.create(model=self.model, messages=[{"role": "user", "content": QUESTION}],
                                                   max_tokens=12, temperature=0.9, seed=7)
        check(chat.choices[0].message.content == cli_chat, f"chat {chat.choices[0].message.content!r} != generate --chat {cli_chat!r}")
        self.expected = {42: cli}

    def case_concurrent_requests(self):
        cli = self.expected[42] if hasattr(self, "expected") else \
            self.generate("-p", PROMPT, "-n", "12", "--temperature", "0.9", "--seed", "42")
        other = self.generate("-p", PROMPT, "-n", "12", "--temperature", "0.9", "--seed", "5")
        seeds = [42, 5, 42, 5, 42, 5]

        def one(seed, streamed):
            if streamed:
                return "".join(c.choices[0].text for c in self.client.completions.create(
                    model=self.model, prompt=PROMPT, max_tokens=12, temperature=0.9, seed=seed, stream=True))
            return self.client.completions.create(model=self.model, prompt=PROMPT, max_tokens=12, temperature=0.9,
                                                  seed=seed).choices[0].text

        with concurrent.futures.ThreadPoolExecutor(len(seeds)) as pool:
            futures = [pool.submit(one, s, i % 3 == 0) for i, s in enumerate(seeds)]
            texts = [f.result(timeout=300) for f in futures]
        for seed, text in zip(seeds, texts):
            want = cli if seed == 42 else other
            check(text == want, f"concurrent seed {seed}: {text!r} != generate's {want!r}")
        check(cli != other, "seeds 42 and 5 gave the same text; the check cannot tell them apart")

    def case_disconnect_mid_stream(self):
        s = self.open_stream({"prompt": COUNTING, "max_tokens": 400, "temperature": 0, "stream": True})
        received = b""
        while received.count(b"data: ") < 3:
            chunk = s.recv(4096)
            check(chunk, "the stream closed before three events")
            received += chunk
        check(received.startswith(b"HTTP/1.1 200"), f"stream head {received[:80]!r}")
        s.close()
        t0 = time.time()
        after = self.client.completions.create(model=self.model, prompt=PROMPT, max_tokens=3, temperature=0)
        check(after.choices[0].text.startswith(" Paris"), f"request after the disconnect: {after}")
        waited = time.time() - t0
        line = self.wait_for_log(lambda l: l.startswith("POST /v1/completions 200") and "client went away" in l,
                                 "the disconnected stream")
        tokens = line.split(" tokens ")[1].split(" ")[0] if " tokens " in line else None
        if tokens is not None:
            check(int(tokens.split("+")[1]) < 400, f"the cancelled stream generated all its tokens: {line}")
        print(f"  next request answered {waited:.2f} s after the disconnect; log: {line}")

    def open_stream(self, body):
        """A raw streaming request on its own socket, returned once its response has begun."""
        data = json.dumps(body).encode()
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=60)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        return s

    def wait_for_log(self, predicate, what):
        for _ in range(100):
            line = next((l for l in self.server.log_lines() if predicate(l)), None)
            if line:
                return line
            time.sleep(0.1)
        raise Failure(f"no log line for {what}:\n" + self.server.log())

    def case_disconnect_while_queued(self):
        # A long stream holds the worker; a second request waits behind it and its client leaves.
        running = self.open_stream({"prompt": COUNTING, "max_tokens": 400, "temperature": 0, "stream": True})
        check(running.recv(4096).startswith(b"HTTP/1.1 200"), "the running stream did not start")
        waiting = self.open_stream({"prompt": "Queued and abandoned", "max_tokens": 400, "temperature": 0})
        for _ in range(50):
            if self.server.request("GET", "/health")[2]["requests"] == 2:
                break
            time.sleep(0.1)
        else:
            raise Failure("the second request never showed as waiting in /health")
        waiting.close()
        running.close()
        after = self.client.completions.create(model=self.model, prompt=PROMPT, max_tokens=3, temperature=0)
        check(after.choices[0].text.startswith(" Paris"), f"request after the disconnects: {after}")
        line = self.wait_for_log(lambda l: "cancelled before it started" in l, "the abandoned queued request")
        check(line.startswith("POST /v1/completions ") and "client went away" in line and " tokens " not in line, line)
        status, _, health = self.server.request("GET", "/health")
        check(health["requests"] == 0, f"requests left after the disconnects: {health}")

    def case_bad_requests(self):
        long_prompt = " ".join(["word"] * (CTX + 10))
        cases = [
            ("malformed JSON", "POST", "/v1/chat/completions", b'{"messages": [', 400, None),
            ("empty body", "POST", "/v1/completions", b"", 400, None),
            ("not an object", "POST", "/v1/completions", b"[1, 2]", 400, None),
            ("unknown field", "POST", "/v1/completions", {"prompt": "x", "frobnicate": 1}, 400, "frobnicate"),
            ("unknown message field", "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x", "mood": 1}]},
             400, "mood"),
            ("wrong type", "POST", "/v1/completions", {"prompt": "x", "max_tokens": "ten"}, 400, "max_tokens"),
            ("fractional max_tokens", "POST", "/v1/completions", {"prompt": "x", "max_tokens": 2.5}, 400, "max_tokens"),
            ("huge max_tokens", "POST", "/v1/completions", {"prompt": "x", "max_tokens": 1e30}, 400, "max_tokens"),
            ("zero max_tokens", "POST", "/v1/completions", {"prompt": "x", "max_tokens": 0}, 400, "max_tokens"),
            ("negative temperature", "POST", "/v1/completions", {"prompt": "x", "temperature": -1}, 400, "temperature"),
            ("top_p above 1", "POST", "/v1/completions", {"prompt": "x", "top_p": 1.5}, 400, "top_p"),
            ("negative seed", "POST", "/v1/completions", {"prompt": "x", "seed": -3}, 400, "seed"),
            ("missing prompt", "POST", "/v1/completions", {"max_tokens": 3}, 400, "prompt"),
            ("missing messages", "POST", "/v1/chat/completions", {"max_tokens": 3}, 400, "messages"),
            ("empty messages", "POST", "/v1/chat/completions", {"messages": []}, 400, "messages"),
            ("tool role", "POST", "/v1/chat/completions", {"messages": [{"role": "tool", "content": "x"}]}, 400, "messages"),
            ("token id out of range", "POST", "/v1/completions", {"prompt": [1, 99999999]}, 400, "prompt"),
            ("empty prompt", "POST", "/v1/completions", {"prompt": ""}, 400, "prompt"),
            ("prompt over the context", "POST", "/v1/completions", {"prompt": long_prompt}, 400, "prompt"),
            ("n > 1", "POST", "/v1/completions", {"prompt": "x", "n": 2}, 422, "n"),
            ("logprobs", "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "logprobs": True}, 422,
             "logprobs"),
            ("stream_options without stream", "POST", "/v1/completions", {"prompt": "x", "stream_options": {"include_usage": True}},
             400, "stream_options"),
            ("unknown model", "POST", "/v1/completions", {"prompt": "x", "model": "gpt-4"}, 404, "model"),
            ("unknown path", "GET", "/v1/embeddings", None, 404, None),
            ("wrong method", "GET", "/v1/chat/completions", None, 405, None),
            ("body over the limit", "POST", "/v1/completions", json.dumps({"prompt": "a" * (BODY_LIMIT + 10)}).encode(), 413, None),
        ]
        for name, method, path, body, status, param in cases:
            got, headers, payload = self.server.request(method, path, body)
            check(got == status, f"{name}: status {got}, expected {status}: {payload}")
            check(headers.get("Content-Type") == "application/json", f"{name}: content type {headers.get('Content-Type')}")
            err = payload.get("error") if isinstance(payload, dict) else None
            check(isinstance(err, dict) and err.get("message") and err.get("type") == "invalid_request_error"
                  and "param" in err and "code" in err, f"{name}: error body {payload}")
            check(param is None or err["param"] == param, f"{name}: param {err['param']!r}, expected {param!r}")
            if name == "prompt over the context":
                check(err["code"] == "context_length_exceeded" and str(CTX) in err["message"]
                      and str(CTX - 1) in err["message"], f"context message: {err}")
            if name == "wrong method":
                check(headers.get("Allow") == "POST", f"405 without Allow: {headers}")
        # The openai client maps them to its exception types.
        for exc, kwargs in [(openai.NotFoundError, dict(model="gpt-4", prompt="x")),
                            (openai.BadRequestError, dict(model=self.model, prompt="x", max_tokens=-2)),
                            (openai.UnprocessableEntityError, dict(model=self.model, prompt="x", n=3))]:
            try:
                self.client.completions.create(**kwargs)
                raise Failure(f"{kwargs} was accepted")
            except exc:
                pass
        # max_tokens past the context is clipped there.
        near_full = " ".join(["word"] * (CTX - 40))
        r = self.client.completions.create(model=self.model, prompt=near_full, max_tokens=100000, temperature=0)
        u = r.usage
        check(r.choices[0].finish_reason == "length" and u.prompt_tokens + u.completion_tokens == CTX, f"clipped: {u}")
        status, _, body = self.server.request("GET", "/health")
        check(status == 200 and body["status"] == "ok", "the server did not survive the bad requests")

    def case_plan_applies_to_every_request(self):
        plan = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "plans", "sa-last8-21-28.json")
        cli = self.generate("--plan", plan, "-p", PROMPT, "-n", "10", "--temperature", "0")
        plain = self.generate("-p", PROMPT, "-n", "10", "--temperature", "0")
        check(cli != plain, "the plan does not change the text; the check cannot tell whether it was applied")
        server = Server(self.args.binary, [*self.model_args, "--plan", plan])
        try:
            for _ in range(2):
                status, _, body = server.request("POST", "/v1/completions", {"prompt": PROMPT, "max_tokens": 10, "temperature": 0})
                check(status == 200 and body["choices"][0]["text"] == cli, f"with --plan: {body} != generate --plan {cli!r}")
        finally:
            check(server.stop() == 0, "the --plan server did not stop cleanly:\n" + server.log())

    def case_logs_one_line_per_request(self):
        time.sleep(0.3)  # a line is written once its response is sent: let the previous case's lines land
        before = len(self.server.log_lines())
        self.server.request("GET", "/health")
        self.client.completions.create(model=self.model, prompt=PROMPT, max_tokens=2, temperature=0)
        time.sleep(0.2)
        new = self.server.log_lines()[before:]
        check(len(new) == 2 and new[0].startswith("GET /health 200") and new[1].startswith("POST /v1/completions 200 tokens ")
              and new[1].endswith(" s"), f"log lines: {new}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=default_binary())
    parser.add_argument("--backend", default="vulkan", choices=["vulkan", "cpu"])
    parser.add_argument("cases", nargs="*", help="case names without the case_ prefix (default: all)")
    args = parser.parse_args()
    t0 = time.time()
    suite = Suite(args)
    print(f"server up on port {suite.server.port} in {time.time() - t0:.1f} s")
    names = args.cases or [n[5:] for n in dir(Suite) if n.startswith("case_")]
    names.sort(key=lambda n: n != "same_text_as_generate")  # it records what the concurrency case expects
    passed = failed = 0
    try:
        for name in names:
            t = time.time()
            try:
                getattr(suite, "case_" + name)()
                passed += 1
                print(f"PASS {name} ({time.time() - t:.1f} s)")
            except Exception as e:  # noqa: BLE001 — every failure is reported and counted
                failed += 1
                print(f"FAIL {name}: {type(e).__name__}: {e}")
    finally:
        status = suite.server.stop()
    log = suite.server.log()
    if status != 0 or "server stopped" not in log:
        failed += 1
        print(f"FAIL graceful shutdown: exit status {status}")
    else:
        passed += 1
        print("PASS graceful shutdown (SIGTERM, exit 0)")
    if failed:
        print("--- server log ---\n" + log)
    print(f"server tests took {time.time() - t0:.1f} s")
    print(f"server_test: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
