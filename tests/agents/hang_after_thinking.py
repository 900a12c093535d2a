#!/usr/bin/env python3
"""A process agent that starts a run and then waits until the server goes away (the read end of its
stdout closes): a run that is always in flight when a test kills the server."""
import json
import select
import sys

run = json.loads(sys.stdin.readline())
sys.stdout.write(json.dumps({"type": "agent_thinking", "reasoning": "waiting", "step": 1}) + "\n")
sys.stdout.flush()
# No events asked for: poll() still reports POLLERR once the pipe's reader (the server) is gone.
p = select.poll()
p.register(sys.stdout.fileno(), 0)
p.poll()
