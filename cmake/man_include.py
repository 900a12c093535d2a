#!/usr/bin/env python3
"""Writes help2man's --include file for agentwire: each subcommand's own --help as a subsection,
and where the files of the Debian package are. Usage: man_include.py AGENTWIRE OUT"""
import subprocess
import sys

binary, out = sys.argv[1], sys.argv[2]
SUBCOMMANDS = ["serve", "check-config", "probe", "backup", "restore"]


def roff(text):
    lines = []
    for line in text.rstrip().splitlines():
        line = line.replace("\\", "\\e")
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


parts = ["[COMMANDS]"]
for sub in SUBCOMMANDS:
    help_text = subprocess.run(["agentwire", sub, "--help"], executable=binary, check=True, capture_output=True,
                               text=True).stdout
    parts += [f'.SS "agentwire {sub}"', ".nf", roff(help_text), ".fi"]
parts += ["[FILES]", ".TP", ".I /etc/agentwire/agentwire.toml",
          "The configuration (every key is documented in it).", ".TP", ".I /var/lib/agentwire",
          "The SQLite store and the analytics spool.", ".TP", ".I /lib/systemd/system/agentwire.service",
          "The systemd unit (Type=notify, watchdog).",
          "[SEE ALSO]", "The documentation in the source tree: docs/operations.md, docs/protocol.md."]
with open(out, "w") as f:
    f.write("\n".join(parts) + "\n")
