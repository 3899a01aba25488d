# expect: failed
try:
    huge = [0] * (2**34)  # 128 GiB of pointers at once
except MemoryError:
    pass
blocks = []
while True:  # then growing in 32 MiB steps until the address-space limit stops it
    blocks.append(bytearray(32 * 2**20))
