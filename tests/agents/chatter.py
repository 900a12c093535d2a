#!/usr/bin/env python3
"""A process agent that thinks out loud every 20 ms and never finishes: a run that has events to
emit at any moment, e.g. right after the node running it is resumed from SIGSTOP."""
import json
import sys
import time

run = json.loads(sys.stdin.readline())
step = 0
try:
    while True:
        step += 1
        sys.stdout.write(json.dumps({"type": "agent_thinking", "reasoning": f"step {step}", "step": step}) + "\n")
        sys.stdout.flush()
        time.sleep(0.02)
except (BrokenPipeError, OSError):
    pass
