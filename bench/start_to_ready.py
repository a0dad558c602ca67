#!/usr/bin/env python3
"""Start-to-ready time of a server: spawn it, poll URL until it answers 200, stop it.

  start_to_ready.py [--times N] [--url URL] -- COMMAND [ARGS...]

The clock starts just before the process is spawned (fork+exec included) and stops at the
first 200 answer of a plain HTTP/1.1 GET (a new loopback connection every 2 ms, so the
resolution is ~2 ms). The process is then sent SIGTERM and waited for (SIGKILL after 5 s).
Prints one JSON line: {"ms": [each start], "median_ms": ..., "rss_ready_kib": [...]}, where
rss_ready_kib is the process's VmRSS right when it became ready.
"""
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from urllib.parse import urlsplit


def ready(host, port, path):
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
            data = s.recv(64)
            return data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200")
    except OSError:
        return False


def rss_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def once(cmd, host, port, path, timeout_s=30):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if ready(host, port, path):
                ms = (time.monotonic() - t0) * 1000
                return ms, rss_kib(p.pid)
            if p.poll() is not None:
                raise SystemExit(f"server exited with {p.returncode} before it was ready")
            if time.monotonic() - t0 > timeout_s:
                raise SystemExit(f"server not ready after {timeout_s} s")
            time.sleep(0.002)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main():
    args = sys.argv[1:]
    times, url = 5, None
    while args and args[0] != "--":
        if args[0] == "--times":
            times = int(args[1]); args = args[2:]
        elif args[0] == "--url":
            url = args[1]; args = args[2:]
        else:
            print(__doc__); sys.exit(2)
    if not args or not url:
        print(__doc__); sys.exit(2)
    cmd = args[1:]
    u = urlsplit(url)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loopback only")
    ms, rss = [], []
    for _ in range(times):
        m, r = once(cmd, u.hostname, u.port or 80, u.path or "/")
        ms.append(round(m, 1))
        rss.append(r)
        time.sleep(0.3)  # let the port be released
    print(json.dumps({"ms": ms, "median_ms": statistics.median(ms), "rss_ready_kib": rss}))


if __name__ == "__main__":
    main()
