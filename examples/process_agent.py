#!/usr/bin/env python3
"""An example agentwire process agent: reads the run from stdin, streams events as JSON Lines.

Run it under agentwire with:
  agentwire serve --set 'agents.process_command=/usr/bin/python3 examples/process_agent.py'
and send a user_message with data.agent = "process".
"""
import json
import sys
import time


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main():
    run = json.loads(sys.stdin.readline())
    text = run["input"]
    emit(type="agent_thinking", reasoning="Reversing the words of the message.", step=1)
    started = time.monotonic()
    words = text.split()
    emit(type="tool_executing", tool_call_id="rev1", tool_name="reverse_words", args={"text": text})
    result = " ".join(reversed(words))
    emit(type="tool_completed", tool_call_id="rev1", tool_name="reverse_words", result={"reversed": result},
         duration_ms=round((time.monotonic() - started) * 1000, 3))
    answer = f"Reversed: {result}"
    for i in range(0, len(answer), 8):
        emit(type="agent_response_chunk", delta=answer[i:i + 8])
    emit(type="final", content=answer)


if __name__ == "__main__":
    main()
