"""The normalized training example every loader produces and every scanner reads.

It lives in :mod:`ftguard.datasets` (the one dataset reader); this module keeps the name.
"""

from ftguard.datasets import Example, Role, Turn

__all__ = ["Example", "Role", "Turn"]
