#!/usr/bin/env python3
"""Administrative S3 calls for tests and the demo, with boto3 against a local S3 server.

Endpoint and credentials come from the AWS_* environment, as for cairn itself.

  s3_admin.py create-bucket NAME [--lock] [--default-retention-days N] [--governance]
  s3_admin.py list-versions NAME PREFIX            # JSON: [{key, version_id, is_latest, delete_marker}]
  s3_admin.py head NAME KEY [VERSION]              # JSON: lock mode, retain-until, version
  s3_admin.py put NAME KEY FILE                    # plain PUT (no If-None-Match): shadows a key
  s3_admin.py delete NAME KEY [VERSION]            # delete marker, or delete one version
  s3_admin.py get NAME KEY OUTFILE
"""
import json
import os
import sys

import boto3
from botocore.exceptions import ClientError


def client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
    )


def main(argv):
    s3 = client()
    cmd, args = argv[0], argv[1:]
    if cmd == "create-bucket":
        name = args[0]
        lock = "--lock" in args
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock)
        if "--default-retention-days" in args:
            days = int(args[args.index("--default-retention-days") + 1])
            mode = "GOVERNANCE" if "--governance" in args else "COMPLIANCE"
            s3.put_object_lock_configuration(
                Bucket=name,
                ObjectLockConfiguration={
                    "ObjectLockEnabled": "Enabled",
                    "Rule": {"DefaultRetention": {"Mode": mode, "Days": days}},
                },
            )
    elif cmd == "list-versions":
        name, prefix = args
        r = s3.list_object_versions(Bucket=name, Prefix=prefix)
        out = [
            {"key": v["Key"], "version_id": v["VersionId"], "is_latest": v["IsLatest"], "delete_marker": False}
            for v in r.get("Versions", [])
        ] + [
            {"key": v["Key"], "version_id": v["VersionId"], "is_latest": v["IsLatest"], "delete_marker": True}
            for v in r.get("DeleteMarkers", [])
        ]
        print(json.dumps(out))
    elif cmd == "head":
        name, key = args[0], args[1]
        kw = {"VersionId": args[2]} if len(args) > 2 else {}
        r = s3.head_object(Bucket=name, Key=key, **kw)
        print(json.dumps({
            "mode": r.get("ObjectLockMode"),
            "retain_until": str(r.get("ObjectLockRetainUntilDate")),
            "version_id": r.get("VersionId"),
        }))
    elif cmd == "put":
        name, key, path = args
        with open(path, "rb") as f:
            r = s3.put_object(Bucket=name, Key=key, Body=f.read())
        print(json.dumps({"version_id": r.get("VersionId")}))
    elif cmd == "delete":
        name, key = args[0], args[1]
        kw = {"VersionId": args[2]} if len(args) > 2 else {}
        try:
            r = s3.delete_object(Bucket=name, Key=key, **kw)
        except ClientError as e:
            print(json.dumps({"error": e.response["Error"]["Code"]}))
            return 3
        print(json.dumps({"delete_marker": r.get("DeleteMarker", False), "version_id": r.get("VersionId")}))
    elif cmd == "get":
        name, key, out = args
        with open(out, "wb") as f:
            f.write(s3.get_object(Bucket=name, Key=key)["Body"].read())
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
