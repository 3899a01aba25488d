# expect: failed
x = input()  # no stdin: EOFError
