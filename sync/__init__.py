"""Ferry's sync core: the hybrid logical clock, the wire protocol and the merge rules.

Both the shared server and the desktop client import this package; it never imports
`server`, `desktop` or `ui`, so the rules that make replicas converge exist exactly once.
"""
