"""Python smtplib as a benchmark peer: N messages over one connection."""
import smtplib
import sys
import time

host, port, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
msg = ("From: <bench@localhost>\r\nTo: <sink@localhost>\r\nSubject: bench\r\n\r\n"
       + ("x" * 76 + "\r\n") * (size // 78)).encode()
t0 = time.monotonic()
with smtplib.SMTP(host, port, local_hostname="localhost") as s:
    for _ in range(n):
        s.sendmail("bench@localhost", ["sink@localhost"], msg)
print("%.1f" % (n / (time.monotonic() - t0)))
