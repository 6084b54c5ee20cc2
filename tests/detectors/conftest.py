import pytest

from detectors.engine import Engine
from detectors.known_values import KnownValues

KEY = b"test-fingerprint-key-0123456789ab"


@pytest.fixture(scope="session")
def engine():
    eng = Engine()
    with eng.session():
        yield eng


@pytest.fixture()
def known():
    return KnownValues(key=KEY)
