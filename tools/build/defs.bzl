"""Macros shared by every package: generated gRPC code and pytest-driven tests."""

load("@rules_python//python:defs.bzl", "py_library", "py_test")

# Protos live under //proto with import paths relative to it ("observatory/jobs/v1/job.proto").
_PROTO_ROOT = "proto"

def py_proto_grpc_library(name, src, deps = [], visibility = ["//visibility:public"]):
    """Generates `<base>_pb2.py`, `<base>_pb2_grpc.py` and their typed `.pyi` from one .proto.

    Creates `:<name>_proto` (the .proto and those it imports, for dependants) and `:<name>_py`
    (the importable library, e.g. `observatory.jobs.v1.job_pb2`). `deps` are other targets of
    this macro, by name.
    """
    base = src[:-len(".proto")]
    package = native.package_name()
    if not package.startswith(_PROTO_ROOT + "/"):
        fail("py_proto_grpc_library must be used under //%s" % _PROTO_ROOT)
    outs = [base + "_pb2.py", base + "_pb2_grpc.py", base + "_pb2.pyi", base + "_pb2_grpc.pyi"]
    native.filegroup(
        name = name + "_proto",
        srcs = [src] + [d + "_proto" for d in deps],
        visibility = visibility,
    )
    native.genrule(
        name = name + "_gen",
        srcs = [name + "_proto"],
        outs = outs,
        tools = [
            "//tools/build:protoc",
            "//tools/build:protoc_gen_mypy",
            "//tools/build:protoc_gen_mypy_grpc",
        ],
        cmd = " ".join([
            "$(execpath //tools/build:protoc)",
            "-I" + _PROTO_ROOT,
            "--plugin=protoc-gen-mypy=$(execpath //tools/build:protoc_gen_mypy)",
            "--plugin=protoc-gen-mypy_grpc=$(execpath //tools/build:protoc_gen_mypy_grpc)",
            "--python_out=$(GENDIR)/" + _PROTO_ROOT,
            "--grpc_python_out=$(GENDIR)/" + _PROTO_ROOT,
            # Typed stubs from mypy-protobuf: the project is checked with mypy --strict.
            "--mypy_out=$(GENDIR)/" + _PROTO_ROOT,
            "--mypy_grpc_out=$(GENDIR)/" + _PROTO_ROOT,
            package + "/" + src,
        ]),
    )
    py_library(
        name = name + "_py",
        srcs = outs[:2],
        data = outs[2:],
        # Makes bazel-bin/proto an import root, so the module is observatory.<area>.v1.<base>_pb2.
        imports = ["/".join([".."] * (len(package.split("/")) - 1))],
        deps = [d + "_py" for d in deps] + [
            "@pip//:grpcio",
            "@pip//:protobuf",
            "@pip//:types_grpcio",
            "@pip//:types_protobuf",
        ],
        visibility = visibility,
    )

def py_pytest_test(name, srcs, deps = [], args = [], **kwargs):
    """A py_test that runs its `srcs` with pytest (JUnit XML to Bazel, skips reported with why)."""
    main = name + "_pytest_main.py"
    native.genrule(
        name = name + "_main",
        srcs = ["//tools/build:pytest_main.py"],
        outs = [main],
        cmd = "cp $< $@",
    )
    py_test(
        name = name,
        srcs = srcs + [main],
        main = main,
        args = [native.package_name() + "/" + s for s in srcs] + args,
        deps = deps + ["@pip//:pytest"],
        **kwargs
    )
