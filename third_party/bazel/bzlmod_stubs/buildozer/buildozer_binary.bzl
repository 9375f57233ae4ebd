"""Stub of buildozer's `buildozer_binary` module extension: bazel_tools does
`use_repo(buildozer_binary, "buildozer_binary")`, so the extension must exist and create that repo."""

def _stub_repo_impl(rctx):
    rctx.file("BUILD.bazel", "# stub: no buildozer offline\n")

_stub_repo = repository_rule(implementation = _stub_repo_impl)

def _buildozer_binary_impl(module_ctx):
    _stub_repo(name = "buildozer_binary")

buildozer_binary = module_extension(implementation = _buildozer_binary_impl)
