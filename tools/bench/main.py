"""`bazel run //tools/bench -- --help`: the benchmark of the local stack against Celery."""

from tools.bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
