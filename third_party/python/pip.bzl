"""Hermetic third-party Python: installs a hashed lock into an isolated interpreter.

The repository holds a venv made `--without-pip` (no system or user site-packages), the lock's
wheels installed with `pip --target site`, one `py_library` per distribution (`@pip//:grpcio`)
and a Python toolchain whose interpreter is that venv. Used by WORKSPACE (`pip_lock`) and by
MODULE.bazel (through extensions.bzl), so both build modes share one implementation.
"""

def _run(rctx, args, what, environment = {}, timeout = 600):
    result = rctx.execute(args, environment = environment, timeout = timeout)
    if result.return_code != 0:
        fail("%s failed (exit %d):\n%s\n%s" % (what, result.return_code, result.stdout, result.stderr))
    return result

def _pip_lock_impl(rctx):
    host_python = rctx.which("python3")
    if host_python == None:
        fail("python3 is not on PATH; run ./bazelw, which installs it")

    # pyenv and similar put shims on PATH; the venv must point at the real interpreter.
    base = _run(rctx, [host_python, "-c", "import sys; print(sys.executable)"], "python3").stdout.strip()
    _run(rctx, [base, "-m", "venv", "--without-pip", "venv"], "python3 -m venv")

    # The machine's own pip configuration (extra indexes, find-links, constraints, in files or
    # PIP_* variables) must not change what gets installed: only the hashed lock decides.
    env = {"PIP_CONFIG_FILE": "/dev/null", "PYTHONNOUSERSITE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    rctx.report_progress("pip install --require-hashes (once; cached until the lock changes)")
    _run(rctx, [
        base,
        "-m",
        "pip",
        "--isolated",
        "install",
        "--quiet",
        "--require-hashes",
        "--no-deps",
        "--only-binary=:all:",
    ] + ["--no-binary=" + name for name in rctx.attr.sdists] + [
        "--no-compile",
        "--root-user-action=ignore",
        "--target",
        "site",
        "-r",
        rctx.path(rctx.attr.lock),
    ], "pip install of %s" % rctx.attr.lock, environment = env, timeout = 1800)

    _run(
        rctx,
        ["venv/bin/python3", "-s", rctx.path(rctx.attr._generator), "site", str(rctx.path("venv/bin/python3")), "BUILD.bazel"],
        "generating @%s//:BUILD.bazel" % rctx.name,
        environment = {"PYTHONPATH": str(rctx.path("site"))},
    )

pip_lock = repository_rule(
    implementation = _pip_lock_impl,
    attrs = {
        "lock": attr.label(mandatory = True, allow_single_file = True),
        # Distributions PyPI has only as source (still hash-checked); pip builds them.
        "sdists": attr.string_list(),
        "_generator": attr.label(default = "//third_party/python:generate_build.py"),
    },
    environ = ["PATH"],
    doc = "Installs a `pip-compile --generate-hashes` lock into an isolated venv, one py_library per dist.",
)
