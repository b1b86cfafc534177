"""An example ftguard plugin distribution: the ``banned_word`` scanner and the ``example_support`` suite.

Nothing here registers itself at import: the distribution's entry points (``ftguard.scanners``,
``ftguard.suites``) name the class and the factory, and ftguard loads them on first use.
"""

__version__ = "0.1.0"
