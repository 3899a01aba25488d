# expect: failed
# bwrap-only
import socket

s = socket.create_connection(("pypi.org", 443), timeout=2)  # no network inside the sandbox
s.close()
