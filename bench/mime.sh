#!/bin/sh
# Building a message with a 10 MB attachment: `missive build` against
# coreutils base64 on the same file (encoding alone) and Python's email
# package building the same message, in one run.  Prints MB/s (attachment
# megabytes per second, median of the runs) and missive's ratio to each,
# three ways: by wall time of the whole process; net of starting any
# process (/bin/true); and marginal, per attachment megabyte (the same
# command with a 1 kB attachment subtracted: fixed costs such as loading
# libcrypto and seeding OpenSSL's DRBG drop out).  A benchmark, not a
# test: it never fails on a number.
#   bench/mime.sh [SIZE_MB] [RUNS]     (defaults 10, 15)
set -eu
cd "$(dirname "$0")/.."
MB=${1:-10}
RUNS=${2:-15}
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DMSV_TESTS=OFF -DMSV_WERROR=OFF >/dev/null
cmake --build build-bench -j"$(nproc)" --target missive_cli >/dev/null
MISSIVE=$(pwd)/build-bench/src/cli/missive

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM
head -c $((MB * 1048576)) /dev/urandom > "$WORK/attachment.bin"
head -c 1024 /dev/urandom > "$WORK/small.bin"
printf 'Hello,\nthe report is attached.\n' > "$WORK/body.txt"

/usr/bin/python3 - "$MISSIVE" "$WORK" "$MB" "$RUNS" <<'PY'
import os, statistics, subprocess, sys, time
missive, work, mb, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
att = os.path.join(work, "attachment.bin")
small = os.path.join(work, "small.bin")
body = os.path.join(work, "body.txt")
pyscript = os.path.join(work, "build.py")
with open(pyscript, "w") as f:
    f.write("""
import sys, time
t0 = time.perf_counter()
from email.message import EmailMessage
from email.policy import SMTP
m = EmailMessage(policy=SMTP)
m["From"] = "Sender <sender@example.com>"
m["To"] = "rcpt@example.org"
m["Subject"] = "report"
m["Date"] = "Thu, 01 Jan 2026 00:00:00 +0000"
m["Message-ID"] = "<bench@example.com>"
m.set_content(open(sys.argv[2]).read())
m.add_attachment(open(sys.argv[1], "rb").read(), maintype="application",
                 subtype="octet-stream", filename="attachment.bin")
out = m.as_bytes()
sys.stdout.buffer.write(out)
sys.stderr.write("%f" % (time.perf_counter() - t0))
""")

def timed(cmd):
    best = []
    inproc = []
    for _ in range(runs):
        with open(os.devnull, "wb") as null:
            t0 = time.perf_counter()
            r = subprocess.run(cmd, stdout=null, stderr=subprocess.PIPE)
            best.append(time.perf_counter() - t0)
        if r.returncode:
            sys.exit("failed: %s\n%s" % (" ".join(cmd), r.stderr.decode(errors="replace")))
        if cmd[0].endswith("python3"):
            inproc.append(float(r.stderr))
    return statistics.median(best), (statistics.median(inproc) if inproc else None)

mcmd = lambda f: [missive, "build", "--from", "sender@example.com", "--from-name", "Sender",
                  "--to", "rcpt@example.org", "--subject", "report", "--text", body,
                  "--attach", f, "--date", "Thu, 01 Jan 2026 00:00:00 +0000",
                  "--message-id", "<bench@example.com>"]
m_t, _ = timed(mcmd(att))
m0, _ = timed(mcmd(small))
b_t, _ = timed(["base64", att])
b0, _ = timed(["base64", small])
z_t, _ = timed(["/bin/true"])
p_t, p_in = timed(["/usr/bin/python3", pyscript, att, body])
p0, _ = timed(["/usr/bin/python3", pyscript, small, body])
rate = lambda t: mb / t
net = lambda t: max(t - z_t, 1e-6)
print("building a message with a %d MB attachment (median of %d runs; process start = "
      "/bin/true = %.1f ms):" % (mb, runs, z_t * 1000))
marg = lambda t, t0: max(t - t0, 1e-6)
print("                          wall MB/s    net MB/s  marginal MB/s   wall ms  (1 kB run ms)")
print("  missive build          %9.1f  %10.1f  %13.1f  %8.1f  %8.1f"
      % (rate(m_t), rate(net(m_t)), rate(marg(m_t, m0)), m_t * 1000, m0 * 1000))
print("  coreutils base64       %9.1f  %10.1f  %13.1f  %8.1f  %8.1f   (encoding only)"
      % (rate(b_t), rate(net(b_t)), rate(marg(b_t, b0)), b_t * 1000, b0 * 1000))
print("  python3 email package  %9.1f  %10.1f  %13.1f  %8.1f  %8.1f   (%.1f ms in-process)"
      % (rate(p_t), rate(net(p_t)), rate(marg(p_t, p0)), p_t * 1000, p0 * 1000, p_in * 1000))
print("ratio missive / base64:        %.2fx wall, %.2fx net, %.2fx marginal  (goal: >= 1.5x)"
      % (b_t / m_t, net(b_t) / net(m_t), marg(b_t, b0) / marg(m_t, m0)))
print("ratio missive / python email:  %.2fx wall, %.2fx net, %.2fx marginal"
      % (p_t / m_t, net(p_t) / net(m_t), marg(p_t, p0) / marg(m_t, m0)))
PY
