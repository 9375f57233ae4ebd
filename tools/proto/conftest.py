"""Make the generated contract modules importable when these tests run outside Bazel.

Under Bazel the py_proto_grpc_library targets put observatory.<area>.v1.*_pb2 on the path. Plain
`pytest tools/proto` from a checkout has no build step, so generate the same modules once per
session into a temp dir, with the same protoc invocation the build macro uses.
"""

from __future__ import annotations

import atexit
import importlib.util
import shutil
import sys
import tempfile
from importlib import resources

from grpc_tools import protoc

from tools.proto import buf_tool


def _generated_modules_importable() -> bool:
    try:
        return importlib.util.find_spec("observatory.jobs.v1.job_pb2") is not None
    except ModuleNotFoundError:  # Parent package "observatory" absent.
        return False


def _generate() -> str:
    out = tempfile.mkdtemp(prefix="observatory-pb2-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    well_known = resources.files("grpc_tools") / "_proto"
    root = buf_tool.proto_dir()
    for rel in buf_tool.proto_files(root):
        args = [
            "protoc",
            f"-I{root}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            f"--pyi_out={out}",
            rel,
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {rel}")
    return out


if not _generated_modules_importable():
    sys.path.insert(0, _generate())
