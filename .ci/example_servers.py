"""Servers for the example catalogs' S3 and MongoDB entries, for `.ci/minimal_install_check.sh`.

Run by the full test environment (moto and SecantusDB are test-only packages): starts a moto S3
server with the archive bucket and, when SecantusDB is installed, a MongoDB-wire server with
the user `iss`; prints one JSON line of environment variables for the catalogs, then serves
until its standard input closes.
"""

from __future__ import annotations

import json
import os
import sys

from intake_broker.testing.servers import S3Server, SecantusServer, secantusd

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
PASSWORD = "iss-secret"

s3 = S3Server()
s3.filesystem().mkdir("nsls2-archive")
env = {
    "ARCHIVE_S3_KEY": "testing",
    "ARCHIVE_S3_SECRET": "testing",
    "ARCHIVE_S3_ENDPOINT": s3.endpoint,
}
mongo = None
if secantusd() is not None:
    import pymongo

    mongo = SecantusServer()
    client = pymongo.MongoClient(mongo.uri, serverSelectionTimeoutMS=2000)
    client.admin.command("createUser", "iss", pwd=PASSWORD, roles=["root"])
    client.close()
    env.update(ISS_MONGO_PASSWORD=PASSWORD, ISS_MONGO_HOST=mongo.host)
print(json.dumps(env), flush=True)
sys.stdin.read()  # until the script closes the pipe
if mongo is not None:
    mongo.stop()
s3.stop()
