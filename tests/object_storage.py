"""A real S3 endpoint on loopback for the tests: moto's server mode, in its own process.

The server logs every request (werkzeug's access log, on its stderr) to a file, so a test
can count exactly which objects a command fetched.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

_REQUEST = re.compile(r'"(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP/[\d.]+"? (\d+)')


@dataclass
class Request:
    method: str
    path: str  # /bucket/key?query
    status: int

    @property
    def key(self) -> str:
        """The object key without the bucket, or '' for a bucket-level request (a listing)."""
        bucket_and_key = self.path.split("?", 1)[0].lstrip("/")
        return bucket_and_key.split("/", 1)[1] if "/" in bucket_and_key else ""


class MotoServer:
    """``moto.server`` on 127.0.0.1 with fake credentials; :meth:`env` is what a client needs."""

    def __init__(self, log_path: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(self.endpoint, timeout=10)  # the first answer loads moto's backends: it can be slow
                break
            except requests.RequestException:  # not listening yet (or, on a loaded machine, not answering yet)
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start: {log_path.read_text()[-2000:]}") from None
                time.sleep(0.1)

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": self.endpoint}

    def storage_options(self) -> dict:
        return {"key": "testing", "secret": "testing", "endpoint_url": self.endpoint,
                "client_kwargs": {"region_name": "us-east-1"}}

    def make_bucket(self, name: str) -> None:
        import s3fs

        # us-east-1 takes no location constraint, which s3fs would send with a region in client_kwargs
        s3fs.S3FileSystem(key="testing", secret="testing", endpoint_url=self.endpoint).mkdir(name)

    def mark(self) -> int:
        """A position in the request log: :meth:`requests_since` gives what came after it."""
        self._log.flush()
        time.sleep(0.2)  # the server writes its log line after answering
        return self.log_path.stat().st_size

    def requests_since(self, mark: int) -> list[Request]:
        time.sleep(0.2)
        with open(self.log_path, "rb") as f:
            f.seek(mark)
            text = f.read().decode("utf-8", "replace")
        return [Request(m[1], m[2], int(m[3])) for m in _REQUEST.finditer(text)]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


def moto_available() -> bool:
    try:
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError:
        return False
    return True


__all__ = ["MotoServer", "Request", "moto_available", "os"]
