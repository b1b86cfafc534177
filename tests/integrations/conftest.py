"""Control-plane fixtures shared with these tests."""

from tests.control.conftest import backend, cp  # noqa: F401
