#!/usr/bin/env python3
"""An example agentwire process agent that uses agentwire's tools (built-in and MCP ones): it asks for a
tool with a `tool_call` line and reads the `tool_result` line agentwire writes back to its stdin.
agentwire runs the call (with tool_executing / tool_completed events, and a person's approval when the
tool needs one), so the agent does not emit those events itself.

The message picks what it does: "word_count <text>" counts words, "multiply A B" multiplies with the
calculator, anything else names a tool to call with no arguments (e.g. "clock").

Run it under agentwire with:
  [[agents.defs]]
  name = "tooled"
  kind = "process"
  command = "/usr/bin/python3 examples/process_agent_tools.py"
  tools = ["calculator", "word_count"]     # absent: every tool
Read stdin line by line: it stays open for the tool results.
"""
import json
import sys


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def call(tool_call_id, tool_name, args):
    """Asks agentwire to run a tool; returns (result, error) from the tool_result line."""
    emit(type="tool_call", tool_call_id=tool_call_id, tool_name=tool_name, args=args)
    reply = json.loads(sys.stdin.readline())
    assert reply["type"] == "tool_result" and reply["tool_call_id"] == tool_call_id, reply
    return reply.get("result"), reply.get("error")


def main():
    run = json.loads(sys.stdin.readline())
    offered = [t["name"] for t in run["tools"]]
    words = run["input"].split()
    emit(type="agent_thinking", reasoning=f"I may call: {', '.join(offered)}", step=1)
    if words[:1] == ["word_count"]:
        result, error = call("c1", "word_count", {"text": " ".join(words[1:])})
        answer = f"{result['words']} words" if result else f"no count: {error['message']}"
    elif words[:1] == ["multiply"] and len(words) == 3:
        result, error = call("c1", "calculator", {"op": "mul", "a": float(words[1]), "b": float(words[2])})
        answer = f"{words[1]} × {words[2]} = {result['value']:g}" if result else f"no product: {error['message']}"
    else:
        result, error = call("c1", words[0] if words else "clock", {})
        answer = f"{words[0]} said {json.dumps(result)}" if result is not None else f"failed: {error['code']}: " \
                                                                                    f"{error['message']}"
    emit(type="agent_response_chunk", delta=answer)
    emit(type="final", content=answer)


if __name__ == "__main__":
    main()
