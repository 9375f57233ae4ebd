"""The services' Redis client against a real server: str replies, and redis-py's C protocol
(hiredis) in use, since pure-Python command packing was a quarter of the metrics engine's CPU."""

from __future__ import annotations

import pytest
from redis._parsers import _HiredisParser
from redis.connection import HiredisRespSerializer

from services.common import redis_store
from tools.testing.servers import RedisServer

pytest_plugins = ["tools.testing.servers.pytest_plugin"]
pytestmark = pytest.mark.integration


def test_client_speaks_hiredis_and_answers_str(redis_server: RedisServer) -> None:
    client = redis_store.connect(redis_server.info.url)
    try:
        client.hset("h", mapping={"a": "1", "b": "é"})
        assert client.hgetall("h") == {"a": "1", "b": "é"}
        connection = client.connection_pool.get_connection()
        try:
            assert isinstance(connection._parser, _HiredisParser)
            assert isinstance(connection._command_packer, HiredisRespSerializer)
        finally:
            client.connection_pool.release(connection)
    finally:
        client.close()
