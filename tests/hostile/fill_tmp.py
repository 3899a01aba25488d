# expect: failed
import os

i = 0
while True:  # many files, each under the file-size limit, until the private /tmp is full
    with open(os.path.join(os.getcwd(), f"f{i}"), "wb") as f:
        f.write(b"x" * 8 * 2**20)
    i += 1
