# expect: failed
# bwrap-only
import glob
import os
import shutil

canary = os.environ["PHI_CANARY_DIR"]
errors = 0
for path in glob.glob(os.path.join(canary, "*")):
    try:
        os.remove(path)
    except OSError:
        errors += 1
shutil.rmtree(canary, ignore_errors=True)
for target in (os.path.expanduser("~/.bashrc"), "/etc/hostname"):
    try:
        os.remove(target)
    except OSError:
        errors += 1
assert errors == 0, f"{errors} deletions refused"
