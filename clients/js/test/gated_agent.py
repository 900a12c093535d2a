#!/usr/bin/env python3
"""A process agent for the JS client's tests: its message names a file (`gate:<path>`); it streams the
first half of its answer, waits until that file exists, then streams the rest. The test opens the gate
once it has done what it wanted to do mid-run (dropped the connection, restarted nothing): a condition,
not a pause."""
import json
import os
import sys
import time


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


run = json.loads(sys.stdin.readline())
gate = run["input"].split("gate:", 1)[1].strip() if "gate:" in run["input"] else ""
emit(type="agent_thinking", reasoning="Waiting for the gate.", step=1)
emit(type="agent_response_chunk", delta="part one, ")
while gate and not os.path.exists(gate):
    time.sleep(0.01)  # polls the condition the test sets
emit(type="agent_response_chunk", delta="part two")
emit(type="final", content="part one, part two")
