#!/bin/sh
# Building a message with a 10 MB attachment: `missive build` against
# coreutils base64 on the same file (encoding alone) and Python's email
# package building the same message, in one run.  Prints MB/s (attachment
# megabytes per second, median of the runs) and missive's ratio to each,
# three ways: by wall time of the whole process; net of starting any
# process (/bin/true); and marginal, per attachment megabyte (the same
# command with a 1 kB attachment subtracted: fixed costs such as loading
# libcrypto drop out).  Also the minor page faults per process (median):
# under gVisor each costs about 16 us, so they are much of a short run.
# Every command writes to /dev/null the same way, and the runs of missive,
# base64 and /bin/true are interleaved (one of each per round) so that a
# burst of load on the machine falls on all of them alike.  A benchmark,
# not a test: it never fails on a number.
#   bench/mime.sh [SIZE_MB] [RUNS]     (defaults 10, 15)
#   MISSIVE_BIN=path bench/mime.sh     an already built missive instead
set -eu
cd "$(dirname "$0")/.."
MB=${1:-10}
RUNS=${2:-15}
if [ -n "${MISSIVE_BIN:-}" ]; then
    MISSIVE=$MISSIVE_BIN
else
    cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DMSV_TESTS=OFF -DMSV_WERROR=OFF >/dev/null
    cmake --build build-bench -j"$(nproc)" --target missive_cli >/dev/null
    MISSIVE=$(pwd)/build-bench/src/cli/missive
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM
head -c $((MB * 1048576)) /dev/urandom > "$WORK/attachment.bin"
head -c 1024 /dev/urandom > "$WORK/small.bin"
printf 'Hello,\nthe report is attached.\n' > "$WORK/body.txt"

/usr/bin/python3 - "$MISSIVE" "$WORK" "$MB" "$RUNS" <<'PY'
import os, resource, statistics, subprocess, sys, time
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

mcmd = lambda f: [missive, "build", "--from", "sender@example.com", "--from-name", "Sender",
                  "--to", "rcpt@example.org", "--subject", "report", "--text", body,
                  "--attach", f, "--date", "Thu, 01 Jan 2026 00:00:00 +0000",
                  "--message-id", "<bench@example.com>"]
cmds = {
    "m": mcmd(att), "m0": mcmd(small),
    "b": ["base64", att], "b0": ["base64", small],
    "z": ["/bin/true"],
    "p": ["/usr/bin/python3", pyscript, att, body], "p0": ["/usr/bin/python3", pyscript, small, body],
}
wall = {k: [] for k in cmds}
faults = {k: [] for k in cmds}
inproc = []

def run_once(key):
    cmd = cmds[key]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt
    with open(os.devnull, "wb") as null:
        t0 = time.perf_counter()
        r = subprocess.run(cmd, stdout=null, stderr=subprocess.PIPE)
        wall[key].append(time.perf_counter() - t0)
    faults[key].append(resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt - before)
    if r.returncode:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), r.stderr.decode(errors="replace")))
    if key == "p":
        inproc.append(float(r.stderr))

for key in cmds:  # warm the page cache and the binaries once, untimed
    run_once(key)
for k in cmds:
    wall[k].clear()
    faults[k].clear()
inproc.clear()
# missive, base64 and /bin/true take turns; Python's runs (34 000 page
# faults each) come after them, so that none of the others starts right
# after one and pays for the memory it churned.
for _ in range(runs):
    for key in ("m", "m0", "b", "b0", "z"):
        run_once(key)
for _ in range(runs):
    for key in ("p", "p0"):
        run_once(key)

med = {k: statistics.median(v) for k, v in wall.items()}
flt = {k: statistics.median(v) for k, v in faults.items()}
m_t, m0, b_t, b0, z_t, p_t, p0 = (med[k] for k in ("m", "m0", "b", "b0", "z", "p", "p0"))
p_in = statistics.median(inproc)
rate = lambda t: mb / t
net = lambda t: max(t - z_t, 1e-6)
marg = lambda t, t0: max(t - t0, 1e-6)
print("building a message with a %d MB attachment (median of %d runs; process "
      "start = /bin/true = %.1f ms, %d faults):" % (mb, runs, z_t * 1000, flt["z"]))
print("                          wall MB/s    net MB/s  marginal MB/s   wall ms  (1 kB run ms)"
      "  faults (1 kB)")
print("  missive build          %9.1f  %10.1f  %13.1f  %8.1f  %8.1f      %6d %6d"
      % (rate(m_t), rate(net(m_t)), rate(marg(m_t, m0)), m_t * 1000, m0 * 1000, flt["m"], flt["m0"]))
print("  coreutils base64       %9.1f  %10.1f  %13.1f  %8.1f  %8.1f      %6d %6d   (encoding only)"
      % (rate(b_t), rate(net(b_t)), rate(marg(b_t, b0)), b_t * 1000, b0 * 1000, flt["b"], flt["b0"]))
print("  python3 email package  %9.1f  %10.1f  %13.1f  %8.1f  %8.1f      %6d %6d   (%.1f ms in-process)"
      % (rate(p_t), rate(net(p_t)), rate(marg(p_t, p0)), p_t * 1000, p0 * 1000, flt["p"], flt["p0"],
         p_in * 1000))
print("ratio missive / base64:        %.2fx wall, %.2fx net, %.2fx marginal  (goal: >= 1.5x wall)"
      % (b_t / m_t, net(b_t) / net(m_t), marg(b_t, b0) / marg(m_t, m0)))
print("ratio missive / python email:  %.2fx wall, %.2fx net, %.2fx marginal"
      % (p_t / m_t, net(p_t) / net(m_t), marg(p_t, p0) / marg(m_t, m0)))
PY
