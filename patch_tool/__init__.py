"""patch_tool: keep a pinned upstream SGLang release and a reviewable patch series on top of it.

Commands (``python -m patch_tool --help``): fetch, verify, apply, check, status, new, refresh, rebase,
releases, bisect, matrix, cache.
"""


class PatchToolError(Exception):
    """A failure the user can act on; the CLI prints it without a traceback."""
