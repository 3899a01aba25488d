# expect: failed
import sys

line = "flood " * 10_000 + "\n"
while True:
    sys.stdout.write(line)
    sys.stderr.write(line)
