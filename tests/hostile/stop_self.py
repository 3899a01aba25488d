# expect: timed out
import os
import signal

os.kill(os.getpid(), signal.SIGSTOP)  # a stopped process never finishes
