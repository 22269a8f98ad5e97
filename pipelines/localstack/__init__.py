"""Real object-store servers on 127.0.0.1 for tests and `fedpipe run --local`.

A real S3 server (SeaweedFS, `weed server -s3`) stands in for each site's MinIO and
fake-gcs-server (memory backend) for the coordinator's Google Cloud Storage. Both are
separate processes from the `.venv-tools` environment, never in-process fakes.
"""

from pipelines.localstack.servers import (
    GcsServer,
    S3Server,
    free_port,
    start_servers,
    stop_servers,
)

__all__ = ["GcsServer", "S3Server", "free_port", "start_servers", "stop_servers"]
