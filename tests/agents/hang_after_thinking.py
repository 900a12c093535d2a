#!/usr/bin/env python3
"""A process agent that starts a run and then waits until its stdin closes (the server went away):
a run that is always in flight when a test kills the server."""
import json
import sys

run = json.loads(sys.stdin.readline())
sys.stdout.write(json.dumps({"type": "agent_thinking", "reasoning": "waiting", "step": 1}) + "\n")
sys.stdout.flush()
sys.stdin.read()
