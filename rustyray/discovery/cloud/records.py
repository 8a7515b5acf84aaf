"""Cloud discovery, pure half: provider API bodies -> instances (NETWORKING-024).

Theory of operation: every provider can list a group of VMs (AWS: EC2 instances by tag or the members
of an Auto Scaling group; Azure: the network interfaces and VMs of a VM scale set, ARM REST API; GCP:
the members of a zonal instance group, Compute REST API v1). Each member becomes one candidate keyed by
its instance id, reached at its private IP on the cluster's configured port. The REST body is
``{"provider", "region", "instances": [{"instance_id", "private_ip", "az"}]}``. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from rustyray.discovery.errors import BackendResponseError
from rustyray.discovery.model import Candidate, DiscoveryResult


def build_cloud_result(provider: str, region: str, candidates: Iterable[Candidate]) -> DiscoveryResult:
    """Candidates (meta carries ``az``) -> the NETWORKING-024 body; sorted by instance id."""
    ordered = tuple(sorted(candidates, key=lambda c: c.node_id))
    body = {
        "provider": provider,
        "region": region,
        "instances": [{"instance_id": c.node_id, "private_ip": c.host, "az": c.meta.get("az")} for c in ordered],
    }
    return DiscoveryResult(backend=provider.lower(), candidates=ordered, body=body)


# -- AWS ----------------------------------------------------------------------------------------
def ec2_filters(tag_filters: Sequence[tuple[str, str]], running_only: bool) -> list[dict[str, Any]]:
    """DescribeInstances filters: ``tag:<key>`` = value for each pair, plus the running state."""
    filters = [{"Name": f"tag:{key}", "Values": [value]} for key, value in tag_filters]
    if running_only:
        filters.append({"Name": "instance-state-name", "Values": ["running"]})
    return filters


def asg_instance_ids(groups: Iterable[Mapping[str, Any]], in_service_only: bool = True) -> list[str]:
    """DescribeAutoScalingGroups ``AutoScalingGroups`` -> member instance ids."""
    ids: list[str] = []
    for group in groups:
        for instance in group.get("Instances") or ():
            if in_service_only and instance.get("LifecycleState") != "InService":
                continue
            ids.append(str(instance["InstanceId"]))
    return ids


def candidates_from_reservations(
    reservations: Iterable[Mapping[str, Any]], port: int, running_only: bool = True
) -> list[Candidate]:
    """DescribeInstances ``Reservations`` -> candidates; instances without a private IP are skipped."""
    out = []
    for reservation in reservations:
        for instance in reservation.get("Instances") or ():
            state = (instance.get("State") or {}).get("Name")
            ip = instance.get("PrivateIpAddress")
            if not ip or (running_only and state != "running"):
                continue
            tags = {t["Key"]: t.get("Value", "") for t in instance.get("Tags") or ()}
            out.append(
                Candidate(
                    node_id=str(instance["InstanceId"]),
                    host=str(ip),
                    port=port,
                    meta={
                        "az": (instance.get("Placement") or {}).get("AvailabilityZone"),
                        "state": state,
                        "tags": tags,
                    },
                )
            )
    return out


# -- Azure --------------------------------------------------------------------------------------
def rebase_link(link: str, base_url: str) -> str:
    """Point a ``nextLink`` at ``base_url`` (keeps path and query) so paging never leaves the endpoint."""
    parts = urlsplit(link)
    base = urlsplit(base_url)
    return f"{base.scheme}://{base.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")


def azure_zone_label(location: str | None, zones: Sequence[str] | None) -> str | None:
    """Azure zones are "1".."3"; label them ``<location>-<zone>`` like AKS's topology zone label."""
    if zones:
        return f"{location}-{zones[0]}" if location else str(zones[0])
    return location


def candidates_from_scale_set(
    nics: Iterable[Mapping[str, Any]], vms: Iterable[Mapping[str, Any]], port: int
) -> list[Candidate]:
    """Scale-set NICs joined to scale-set VMs (by VM resource id) -> one candidate per VM.

    The primary NIC's primary IP configuration gives the private IP; the VM gives name and zone.
    """
    by_id = {str(vm.get("id", "")).lower(): vm for vm in vms}
    out: dict[str, Candidate] = {}
    for nic in nics:
        props = nic.get("properties") or {}
        if props.get("primary") is False:
            continue
        vm_id = str((props.get("virtualMachine") or {}).get("id", ""))
        configs = props.get("ipConfigurations") or ()
        primary = [c for c in configs if (c.get("properties") or {}).get("primary", True)] or list(configs)
        ip = (primary[0].get("properties") or {}).get("privateIPAddress") if primary else None
        if not vm_id or not ip:
            continue
        vm = by_id.get(vm_id.lower(), {})
        name = str(vm.get("name") or vm_id.rstrip("/").rsplit("/", 1)[-1])
        out[name] = Candidate(
            node_id=name,
            host=str(ip),
            port=port,
            meta={
                "az": azure_zone_label(vm.get("location"), vm.get("zones")),
                "vm_instance_id": vm.get("instanceId"),
                "location": vm.get("location"),
            },
        )
    return list(out.values())


# -- GCP ----------------------------------------------------------------------------------------
def region_from_zone(zone: str) -> str:
    """``us-central1-a`` -> ``us-central1``."""
    return zone.rsplit("-", 1)[0] if zone.count("-") >= 2 else zone


def gcp_members(list_instances_body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """instanceGroups.listInstances body -> (zone, instance name) pairs parsed from the member URLs."""
    members = []
    for item in list_instances_body.get("items") or ():
        url = str(item.get("instance", ""))
        parts = urlsplit(url).path.strip("/").split("/")
        try:
            zone = parts[parts.index("zones") + 1]
            name = parts[parts.index("instances") + 1]
        except (ValueError, IndexError) as exc:
            raise BackendResponseError(f"unexpected GCP instance URL {url!r}") from exc
        members.append((zone, name))
    return members


def candidate_from_gcp_instance(instance: Mapping[str, Any], port: int) -> Candidate | None:
    """instances.get body -> candidate from the first network interface; None without a private IP."""
    interfaces = instance.get("networkInterfaces") or ()
    ip = interfaces[0].get("networkIP") if interfaces else None
    if not ip:
        return None
    zone = str(instance.get("zone", "")).rstrip("/").rsplit("/", 1)[-1] or None
    return Candidate(
        node_id=str(instance["name"]),
        host=str(ip),
        port=port,
        meta={"az": zone, "numeric_id": instance.get("id"), "status": instance.get("status")},
    )
