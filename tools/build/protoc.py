"""protoc from grpcio-tools, with the well-known types (google/protobuf/*.proto) on the path."""

import sys
from importlib import resources

from grpc_tools import protoc


def main() -> int:
    well_known = resources.files("grpc_tools") / "_proto"
    return int(protoc.main(["protoc", *sys.argv[1:], f"-I{well_known}"]))


if __name__ == "__main__":
    sys.exit(main())
