"""Decodes Sparkplug B payloads with an implementation independent of the guardian's: Google's
protoc (from grpcio-tools) compiles Eclipse Tahu's sparkplug_b.proto to Python, and the protobuf
package parses the payloads.

Usage: sparkplug_decode.py PROTO < lines
       sparkplug_decode.py PROTO --ncmd NAME=VALUE... (prints an NCMD payload in hex: VALUE
       `true`/`false` is a Boolean metric, a number a Double one)
Each input line is `TOPIC HEX` (mosquitto_sub -F '%t %x'); each output line is a JSON object
{"topic": TOPIC, "payload": {...}} (field names as in the .proto, 64-bit integers as strings,
as protobuf's JSON mapping has them; a metric's bytes_value in hex, not the mapping's base64).
A payload that does not parse fails the run.
"""

import importlib
import json
import os
import sys
import tempfile

from google.protobuf import json_format
from grpc_tools import protoc


def main() -> int:
    proto = os.path.abspath(sys.argv[1])
    out = tempfile.mkdtemp(prefix="sparkplug-py-")
    status = protoc.main(
        ["protoc", f"--proto_path={os.path.dirname(proto)}", f"--python_out={out}", proto]
    )
    if status != 0:
        print(f"protoc failed on {proto}", file=sys.stderr)
        return 1
    sys.path.insert(0, out)
    module = importlib.import_module(os.path.splitext(os.path.basename(proto))[0] + "_pb2")
    if sys.argv[2:3] == ["--ncmd"]:
        payload = module.Payload(timestamp=1, seq=0)
        for arg in sys.argv[3:]:
            name, _, value = arg.partition("=")
            metric = payload.metrics.add(name=name, timestamp=1)
            if value in ("true", "false"):
                metric.datatype = module.DataType.Value("Boolean")
                metric.boolean_value = value == "true"
            else:
                metric.datatype = module.DataType.Value("Double")
                metric.double_value = float(value)
        print(payload.SerializeToString().hex())
        return 0
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        topic, _, hex_payload = line.partition(" ")
        payload = module.Payload()
        payload.ParseFromString(bytes.fromhex(hex_payload))
        decoded = json_format.MessageToDict(payload, preserving_proto_field_name=True)
        for metric, parsed in zip(decoded.get("metrics", []), payload.metrics):
            if "bytes_value" in metric:
                metric["bytes_value"] = parsed.bytes_value.hex()
        print(json.dumps({"topic": topic, "payload": decoded}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
