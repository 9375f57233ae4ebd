"""protoc plugin: typed `_pb2_grpc.pyi` stubs for the gRPC services (mypy-protobuf)."""

from mypy_protobuf.main import grpc

if __name__ == "__main__":
    grpc()
