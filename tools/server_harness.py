"""Starts `layershare serve` on a free loopback port and talks to it over raw HTTP.

Shared by tools/server_test.py (the end-to-end tests) and tools/server_load.py (the load check).
"""
import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time


class Server:
    """A `layershare serve --port 0` child; `port` is read from its "listening on" line."""

    def __init__(self, binary, args, startup_timeout=300):
        self.binary = binary
        self.lines = []
        self._lock = threading.Lock()
        self._listening = threading.Event()
        self.port = None
        self.proc = subprocess.Popen([binary, "serve", "--port", "0", *args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        if not self._listening.wait(startup_timeout) or self.port is None:
            self.stop()
            raise RuntimeError("server did not start:\n" + self.log())

    def _read(self):
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))
            m = re.search(r"listening on http://[^:\s]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                self._listening.set()
        self._listening.set()  # exited: stop waiting

    def log(self):
        with self._lock:
            return "\n".join(self.lines)

    def log_lines(self):
        with self._lock:
            return list(self.lines)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def request(self, method, path, body=None, headers=None, timeout=120):
        """(status, headers, parsed JSON or raw text) of one request on a fresh connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
            h = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            raw = r.read().decode()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = raw
            return r.status, dict(r.getheaders()), payload
        finally:
            conn.close()

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Signals the server and returns its exit status (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode


def default_binary():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, "..", ".build", "release", "layershare")
