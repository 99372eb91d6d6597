"""Processes and HTTP for the harness: everything started goes through `Procs`, which stops it all
(process groups, SIGTERM then SIGKILL) on exit, error, Ctrl-C or the run's deadline."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request


class HarnessError(Exception):
    pass


class Procs:
    def __init__(self):
        self.live = []  # (name, Popen)

    def start(self, name, argv, log_path, env=None, cwd=None):
        log = open(log_path, "ab")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True)
        log.close()
        self.live.append((name, p))
        return p

    def run(self, argv, timeout, env=None, cwd=None, check=True, capture=True):
        """Runs a command to completion in its own process group, killed on timeout or interrupt."""
        p = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.STDOUT if capture else None,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
            text=True,
        )
        self.live.append((argv[0], p))
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(p)
            raise HarnessError(f"{' '.join(map(str, argv[:3]))} ... took longer than {timeout}s")
        finally:
            if p.poll() is None:
                self.stop(p)
            self.live = [(n, q) for n, q in self.live if q is not p]
        if check and p.returncode != 0:
            raise HarnessError(f"{' '.join(map(str, argv))} exited {p.returncode}:\n{(out or '')[-3000:]}")
        return p.returncode, out or ""

    def stop(self, p, grace=10.0):
        if p.poll() is None:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    p.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        else:
            # The leader is gone; make sure nothing it left in its group lingers.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.live = [(n, q) for n, q in self.live if q is not p]

    def stop_all(self):
        for _, p in list(reversed(self.live)):
            self.stop(p, grace=5.0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_kib(pid):
    """VmHWM of a live process, in KiB (None when unreadable)."""
    return _status_kib(pid, "VmHWM")


def current_rss_kib(pid):
    return _status_kib(pid, "VmRSS")


def reset_peak_rss(pid):
    """Resets VmHWM to the current RSS (Linux: clear_refs 5), so the next read is the peak since now."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def http(method, url, body=None, headers=None, timeout=60):
    """Returns (status, parsed JSON or text or None)."""
    data = None
    h = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            status, raw = res.status, res.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    if not raw:
        return status, None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def expect(status, body, want, what):
    ok = status in want if isinstance(want, (tuple, list, set)) else status == want
    if not ok:
        raise HarnessError(f"{what}: HTTP {status}, wanted {want}: {str(body)[:500]}")
    return body


def wait_http(url, proc, timeout, what, log_path=None):
    """Polls `url` until it answers 200; fails early if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HarnessError(f"{what} exited with {proc.returncode} before it was ready{tail(log_path)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as res:
                if res.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    raise HarnessError(f"{what} not ready at {url} after {timeout}s{tail(log_path)}")


def tail(path, n=20):
    if not path or not os.path.exists(path):
        return ""
    with open(path, errors="replace") as f:
        lines = f.read().splitlines()[-n:]
    return "\n--- last lines of " + path + "\n" + "\n".join(lines)


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return None


def wait_idle(pid, timeout=60.0, step=0.25):
    """Waits until the process burns under ~10 % of a core for two steps in a row: work that the
    previous load left queued (a password hash whose client is gone, say) must not bill the next one."""
    hz = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + timeout
    quiet, last = 0, cpu_ticks(pid)
    while last is not None and time.monotonic() < deadline:
        time.sleep(step)
        now = cpu_ticks(pid)
        if now is None:
            return
        quiet = quiet + 1 if (now - last) < 0.1 * step * hz else 0
        if quiet >= 2:
            return
        last = now


def machine_busy_ticks():
    """CPU ticks the whole machine spent busy (everything but idle and I/O wait), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return sum(fields[:8]) - fields[3] - fields[4]
    except (OSError, ValueError, IndexError):
        return None


def wait_machine_idle(timeout=20.0, step=0.25):
    """Waits until the whole machine burns under ~15 % of a core for two steps in a row: with every
    server running side by side, what one left behind (PostgreSQL's autovacuum after inserts, a
    checkpoint) must not bill the next system measured. Returns False when it gave up waiting."""
    hz = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + timeout
    quiet, last = 0, machine_busy_ticks()
    while last is not None and time.monotonic() < deadline:
        time.sleep(step)
        now = machine_busy_ticks()
        if now is None:
            return True
        quiet = quiet + 1 if (now - last) < 0.15 * step * hz else 0
        if quiet >= 2:
            return True
        last = now
    return last is None
