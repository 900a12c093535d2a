"""docs/openapi.yaml as JSON, for the binary to serve at GET /api/openapi.json (run by the build)."""
import json
import os
import sys

import yaml

with open(sys.argv[1]) as f:
    doc = yaml.safe_load(f)
with open(sys.argv[2] + ".tmp", "w") as f:
    json.dump(doc, f, separators=(",", ":"), sort_keys=False)
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
