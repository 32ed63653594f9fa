#!/usr/bin/env python3
"""Drives a command through a pseudo-terminal, as a person at a terminal would (for chat tests).

Usage:
    python3 tools/chat_pty.py --steps STEPS.json [--timeout S] -- COMMAND [ARGS...]

STEPS.json is a list of ["send", TEXT] (bytes written to the terminal; "\\u0003" is Ctrl-C, "\\u0004"
Ctrl-D), ["wait", TEXT] (block until TEXT appears in the output after the previous wait's match) and
["more", N] (block until N more bytes have come after it, e.g. part of a reply).
Prints one JSON object: the whole transcript (the terminal shows stdout and stderr together),
the exit status, and "error" if a wait or the exit timed out.
"""

import argparse
import json
import os
import pty
import select
import signal
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", required=True)
    ap.add_argument("--timeout", type=float, default=120, help="seconds for each wait and for the exit")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    with open(args.steps) as fh:
        steps = json.load(fh)

    pid, fd = pty.fork()  # the child gets a new session with the terminal as its controlling tty
    if pid == 0:
        os.execvp(command[0], command)

    out = bytearray()
    error = None

    def pump(deadline):
        ready, _, _ = select.select([fd], [], [], max(0.0, min(0.2, deadline - time.time())))
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                return False
            if not data:
                return False
            out.extend(data)
        return True

    mark = 0
    for kind, text in steps:
        if kind == "send":
            os.write(fd, text.encode())
            continue
        deadline = time.time() + args.timeout
        if kind == "more":
            while len(out) < mark + text:
                if time.time() > deadline or not pump(deadline):
                    error = f"timed out waiting for {text} more bytes"
                    break
            mark = len(out)
            if error:
                break
            continue
        needle = text.encode()
        while out.find(needle, mark) < 0:
            if time.time() > deadline or not pump(deadline):
                error = f"timed out waiting for {text!r}"
                break
        if error:
            break
        mark = out.find(needle, mark) + len(needle)

    status = None
    deadline = time.time() + (0 if error else args.timeout)
    while status is None:
        done, code = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(code)
        elif time.time() > deadline:
            os.kill(pid, signal.SIGKILL)
            error = error or "timed out waiting for the exit"
            os.waitpid(pid, 0)
            status = -9
        else:
            pump(deadline)
    while pump(time.time()):  # what is left in the terminal
        pass
    print(json.dumps({"transcript": out.decode("utf-8", "replace"), "status": status, "error": error}))


if __name__ == "__main__":
    main()
