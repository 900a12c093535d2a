#!/usr/bin/env python3
"""A process agent for the browser tests: the same events as the echo agent, with pauses long
enough to stop the server in the middle of a run."""
import json
import sys
import time


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


run = json.loads(sys.stdin.readline())
emit(type="agent_thinking", reasoning="Taking my time.", step=1)
time.sleep(3)
emit(type="tool_executing", tool_call_id="t1", tool_name="word_count", args={"text": run["input"]})
emit(type="tool_completed", tool_call_id="t1", tool_name="word_count", result={"words": len(run["input"].split())},
     duration_ms=1)
emit(type="agent_response_chunk", delta="slow ")
emit(type="final", content="slow answer")
