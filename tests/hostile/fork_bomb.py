# expect: failed
import os

while True:
    os.fork()
