"""Real servers for tests: RabbitMQ, PostgreSQL, Redis, a MongoDB-wire server, Prometheus and
Alertmanager, each on free 127.0.0.1 ports with its state in a temp dir.

    server = RedisServer(tmp_path / "redis")
    info = server.start()          # ServerInfo(host, port, url); waits until it serves
    ...
    server.stop()                  # kills exactly what start() spawned

In pytest, use the fixtures of `tools.testing.servers.pytest_plugin` instead.
"""

from tools.testing.servers.alertmanager import AlertmanagerServer
from tools.testing.servers.base import Server, ServerError, ServerInfo
from tools.testing.servers.mongo import MongoServer
from tools.testing.servers.postgres import PostgresInfo, PostgresServer
from tools.testing.servers.procs import ProcessId
from tools.testing.servers.programs import MissingProgramError
from tools.testing.servers.prometheus import PrometheusServer
from tools.testing.servers.rabbitmq import RabbitMQInfo, RabbitMQPorts, RabbitMQServer
from tools.testing.servers.redis import RedisServer

__all__ = [
    "AlertmanagerServer",
    "MissingProgramError",
    "MongoServer",
    "PostgresInfo",
    "PostgresServer",
    "ProcessId",
    "PrometheusServer",
    "RabbitMQInfo",
    "RabbitMQPorts",
    "RabbitMQServer",
    "RedisServer",
    "Server",
    "ServerError",
    "ServerInfo",
]
