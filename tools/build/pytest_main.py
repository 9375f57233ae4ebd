"""Entry point of every py_pytest_test: runs pytest on the test's files under Bazel."""

import os
import sys

import pytest


def main() -> int:
    args = ["-p", "no:cacheprovider", "-rfEs", *sys.argv[1:]]
    # Per-test-case results for Bazel (and so for CI's pass/fail count).
    if xml := os.environ.get("XML_OUTPUT_FILE"):
        args.append(f"--junitxml={xml}")
    # `bazel test --test_filter=expr` arrives here.
    if only := os.environ.get("TESTBRIDGE_TEST_ONLY"):
        args += ["-k", only]
    return int(pytest.main(args))


if __name__ == "__main__":
    sys.exit(main())
