#!/usr/bin/env python3
"""A process agent whose answer lists the descriptors it was started with beyond stdin, stdout and
stderr: it must hold none of the server's (its listening socket, its users' connections)."""
import json
import os
import sys

json.loads(sys.stdin.readline())
extra = []
for fd in sorted(int(x) for x in os.listdir("/proc/self/fd")):
    if fd > 2:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the directory listing's own descriptor, closed by now
        if not target.startswith("/proc/"):
            extra.append(f"{fd}:{target}")
sys.stdout.write(json.dumps({"type": "final", "content": json.dumps(extra)}) + "\n")
