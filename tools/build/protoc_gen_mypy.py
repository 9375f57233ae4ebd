"""protoc plugin: typed `_pb2.pyi` stubs (mypy-protobuf), clean under mypy --strict."""

from mypy_protobuf.main import main

if __name__ == "__main__":
    main()
