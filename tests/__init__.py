"""The test suite: tests/unit, tests/api and tests/acceptance (marked slow), conftest.py's fixtures,
and tests/support, what they share (imported as `tests.support.<module>`)."""
