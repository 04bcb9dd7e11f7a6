"""An S3-compatible server for the object store tests: moto's server (an independent S3
implementation, PyPI `moto[server]`) on a loopback port of its own choosing.

Usage: moto_s3.py  -- prints `listening PORT`, then reads commands on standard input:
  bucket NAME   create the bucket NAME (through boto3, S3's own client), answers `ok NAME`
It exits when its standard input closes (the test process ended, however it ended).

S3_UPLOAD_PART_MIN_SIZE in the environment lowers moto's smallest part (S3's is 5 MiB) so
that tests of multipart uploads stay small.
"""

import logging
import sys

import boto3
from moto.server import ThreadedMotoServer


def main() -> None:
    # One line per request on stderr would bury the test's own output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="moto",
        aws_secret_access_key="moto",
    )
    print(f"listening {port}", flush=True)
    for line in sys.stdin:
        words = line.split()
        try:
            if len(words) == 2 and words[0] == "bucket":
                client.create_bucket(Bucket=words[1])
                print(f"ok {words[1]}", flush=True)
            else:
                print(f"error unknown command {line.strip()!r}", flush=True)
        except Exception as e:  # noqa: BLE001 -- reported to the test, which fails on it
            print(f"error {e}", flush=True)
    server.stop()


if __name__ == "__main__":
    main()
