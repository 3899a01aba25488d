# expect: failed
# bwrap-only
import os
import sys

canary = os.environ["PHI_CANARY_DIR"]
targets = [os.path.join(canary, "canary.txt"), os.path.join(canary, "new_file.txt"),
           os.path.join(os.path.dirname(sys.executable), "phi_hostile_marker"), "/etc/phi_hostile_marker",
           "/root/phi_hostile_marker", "/var/tmp/phi_hostile_marker"]
written = 0
for t in targets:
    try:
        with open(t, "a") as f:
            f.write("pwned\n")
        written += 1
    except OSError:
        pass
assert written == len(targets), f"only {written} of {len(targets)} writes outside went through"
