"""The `pip` module extension for bzlmod (Bazel 7+): the same repository rule as WORKSPACE mode.

Kept apart from pip.bzl because Bazel 4.2.3 cannot even parse `module_extension`.
"""

load(":pip.bzl", "pip_lock")

def _pip_impl(module_ctx):
    for mod in module_ctx.modules:
        for lock in mod.tags.lock:
            pip_lock(name = lock.name, lock = lock.lock, sdists = lock.sdists)

pip = module_extension(
    implementation = _pip_impl,
    tag_classes = {"lock": tag_class(attrs = {
        "name": attr.string(default = "pip"),
        "lock": attr.label(mandatory = True),
        "sdists": attr.string_list(),
    })},
)
