"""A throwaway Prometheus that scrapes itself (and whatever else a test asks for) every second."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from tools.testing.servers.net import HOST
from tools.testing.servers.programs import find_program
from tools.testing.servers.promstyle import PromStyleServer


class PrometheusServer(PromStyleServer):
    name = "prometheus"
    config_file = "prometheus.yml"

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        scrape_configs: Sequence[Mapping[str, object]] = (),
        rule_files: Sequence[str | os.PathLike[str]] = (),
        alertmanagers: Sequence[str] = (),
        interval: str = "1s",
        port: int | None = None,
    ) -> None:
        """`scrape_configs` are added to the self-scrape job; `alertmanagers` are host:port."""
        super().__init__(state_dir, port=port)
        self._scrape_configs = [dict(c) for c in scrape_configs]
        self._rule_files = [str(Path(f).resolve()) for f in rule_files]
        self._alertmanagers = list(alertmanagers)
        self._interval = interval

    def _config(self, port: int) -> dict[str, object]:
        config: dict[str, object] = {
            "global": {"scrape_interval": self._interval, "evaluation_interval": self._interval},
            "scrape_configs": [
                {"job_name": "prometheus", "static_configs": [{"targets": [f"{HOST}:{port}"]}]},
                *self._scrape_configs,
            ],
        }
        if self._rule_files:
            config["rule_files"] = self._rule_files
        if self._alertmanagers:
            config["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": self._alertmanagers}]}]
            }
        return config

    def _argv(self, config: Path, port: int) -> list[str]:
        return [
            find_program("prometheus", "prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.state_dir / 'data'}",
            f"--web.listen-address={HOST}:{port}",
            # The default (1m) holds back an alert that fired before Alertmanager was discovered.
            "--rules.alert.resend-delay=1s",
        ]
