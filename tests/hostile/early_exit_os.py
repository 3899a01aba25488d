# expect: failed
import os


def add(a, b):
    return a - b


os._exit(0)  # leaves with status 0 before the tests below run
assert add(1, 2) == 3
