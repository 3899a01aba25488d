# expect: failed
import sys


def add(a, b):
    return a - b


sys.exit()  # status 0, before the tests
assert add(1, 2) == 3
