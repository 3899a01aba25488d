# expect: failed
def add(a, b):
    return a - b


raise SystemExit(0)
assert add(1, 2) == 3
