#!/usr/bin/env python3
"""A process agent that thinks, streams part of an answer, then waits until it is stopped or the
server goes away: a run in progress with a partial answer."""
import json
import select
import sys

run = json.loads(sys.stdin.readline())
for line in ({"type": "agent_thinking", "reasoning": "waiting", "step": 1},
             {"type": "agent_response_chunk", "delta": "partial answer "},
             {"type": "agent_response_chunk", "delta": "so far"}):
    sys.stdout.write(json.dumps(line) + "\n")
sys.stdout.flush()
p = select.poll()
p.register(sys.stdout.fileno(), 0)
p.poll()
