"""AWS discovery adapter (NETWORKING-024): EC2 by tags or Auto Scaling group membership, via boto3.

boto3 is synchronous, so every call runs in a thread executor; the clients are created once, lazily.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from rustyray.discovery.cloud.records import (
    asg_instance_ids,
    build_cloud_result,
    candidates_from_reservations,
    ec2_filters,
)
from rustyray.discovery.config import AwsDiscoveryConfig
from rustyray.discovery.errors import BackendResponseError, BackendUnavailableError
from rustyray.discovery.model import DiscoveryEvent, DiscoveryResult
from rustyray.discovery.polling import poll_watch


class AwsDiscovery:
    """Lists cluster members from EC2 / Auto Scaling."""

    name = "aws"

    def __init__(self, config: AwsDiscoveryConfig, *, executor: Executor | None = None) -> None:
        config.validate()
        self.config = config
        self._executor = executor
        self._clients: dict[str, Any] = {}

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            cfg = self.config
            session = boto3.session.Session(
                aws_access_key_id=cfg.access_key_id,
                aws_secret_access_key=cfg.secret_access_key,
                region_name=cfg.region,
            )
            self._clients[service] = session.client(
                service,
                endpoint_url=cfg.endpoint_url,
                config=botocore.config.Config(
                    connect_timeout=cfg.request_timeout_s,
                    read_timeout=cfg.request_timeout_s,
                    retries={"max_attempts": 2},
                ),
            )
        return self._clients[service]

    async def _run(self, fn: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except botocore.exceptions.ClientError as exc:
            raise BackendResponseError(f"AWS: {exc}") from exc
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            raise BackendUnavailableError(f"AWS: {type(exc).__name__}: {exc}") from exc

    def _describe_instances(self, instance_ids: list[str] | None) -> list[dict[str, Any]]:
        paginator = self._client("ec2").get_paginator("describe_instances")
        kwargs: dict[str, Any] = {}
        filters = ec2_filters(self.config.tag_filters, self.config.running_only)
        if filters:
            kwargs["Filters"] = filters
        if instance_ids is not None:
            kwargs["InstanceIds"] = instance_ids
        return [r for page in paginator.paginate(**kwargs) for r in page.get("Reservations", [])]

    def _asg_members(self) -> list[str]:
        paginator = self._client("autoscaling").get_paginator("describe_auto_scaling_groups")
        groups = [
            g
            for page in paginator.paginate(AutoScalingGroupNames=[self.config.auto_scaling_group])
            for g in page.get("AutoScalingGroups", [])
        ]
        if not groups:
            raise BackendResponseError(f"AWS: no Auto Scaling group named {self.config.auto_scaling_group!r}", 404)
        return asg_instance_ids(groups)

    async def discover(self) -> DiscoveryResult:
        """``{"provider": "AWS", "region", "instances": [{"instance_id", "private_ip", "az"}]}``."""
        instance_ids: list[str] | None = None
        if self.config.auto_scaling_group:
            instance_ids = await self._run(self._asg_members)
            if not instance_ids:
                return build_cloud_result("AWS", self.config.region, [])
        reservations = await self._run(functools.partial(self._describe_instances, instance_ids))
        candidates = candidates_from_reservations(reservations, self.config.port, self.config.running_only)
        return build_cloud_result("AWS", self.config.region, candidates)

    def watch(self, interval_s: float = 30.0) -> AsyncIterator[DiscoveryEvent]:
        """Poll ``discover()`` every ``interval_s`` seconds, yielding JOIN/LEAVE (the API has no feed)."""
        return poll_watch(self.discover, interval_s)

    async def aclose(self) -> None:
        """Close the boto3 clients' connection pools."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()
