"""Log lines a client cannot forge: control characters in logged values come out escaped."""

import logging

import pytest

from proxy import logsafe


@pytest.fixture
def installed():
    factory = logging.getLogRecordFactory()
    logsafe.install()
    yield
    logging.setLogRecordFactory(factory)


def test_logged_crlf_is_escaped_on_one_line(installed, caplog):
    with caplog.at_level(logging.INFO, logger="proxy.test"):
        logging.getLogger("proxy.test").info("%s %s -> %d", "GET",
                                             "/listings/\r\nFORGED 200 OK\x1b[2J", 404)

    [message] = [record.getMessage() for record in caplog.records]
    assert message == "GET /listings/\\x0d\\x0aFORGED 200 OK\\x1b[2J -> 404"


def test_install_twice_wraps_once(installed):
    factory = logging.getLogRecordFactory()
    logsafe.install()
    assert logging.getLogRecordFactory() is factory
