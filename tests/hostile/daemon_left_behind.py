# expect: passed
import os
import time

# A double-forked daemon in its own session keeps running after the program ends;
# the program itself reaches its end, so the verdict is "passed" - but the daemon must be killed.
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(300)
    os._exit(0)
os.wait()
import subprocess

subprocess.Popen(["sleep", "300"], start_new_session=True)
assert True
