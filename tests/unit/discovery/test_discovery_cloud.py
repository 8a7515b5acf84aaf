"""Cloud discovery: pure parsing, AWS against moto's real server, Azure and GCP against doubles.

moto gets a VPC 127.0.0.0/16 and subnet 127.0.1.0/24, so every instance address is a loopback one;
nothing ever connects to an instance address anyway.
"""

import boto3
import pytest

from rustyray.discovery import BackendResponseError
from rustyray.discovery.cloud.aws import AwsDiscovery, AwsDiscoveryConfig
from rustyray.discovery.cloud.azure import AzureDiscovery, AzureDiscoveryConfig
from rustyray.discovery.cloud.gcp import GcpDiscovery, GcpDiscoveryConfig
from rustyray.discovery.cloud.records import (
    asg_instance_ids,
    candidates_from_reservations,
    ec2_filters,
    gcp_members,
    rebase_link,
    region_from_zone,
)

REGION = "us-east-1"
CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": REGION}


# -- pure ----------------------------------------------------------------------------------------
def test_ec2_filters_and_asg_members():
    assert ec2_filters([("cluster", "prod")], True) == [
        {"Name": "tag:cluster", "Values": ["prod"]},
        {"Name": "instance-state-name", "Values": ["running"]},
    ]
    groups = [
        {
            "Instances": [
                {"InstanceId": "i-1", "LifecycleState": "InService"},
                {"InstanceId": "i-2", "LifecycleState": "Pending"},
            ]
        }
    ]
    assert asg_instance_ids(groups) == ["i-1"]
    assert asg_instance_ids(groups, in_service_only=False) == ["i-1", "i-2"]


def test_reservations_skip_stopped_and_addressless():
    reservations = [
        {
            "Instances": [
                {
                    "InstanceId": "i-a",
                    "PrivateIpAddress": "127.0.1.4",
                    "State": {"Name": "running"},
                    "Placement": {"AvailabilityZone": "us-east-1a"},
                },
                {"InstanceId": "i-b", "PrivateIpAddress": "127.0.1.5", "State": {"Name": "stopped"}},
                {"InstanceId": "i-c", "State": {"Name": "running"}},
            ]
        }
    ]
    out = candidates_from_reservations(reservations, 7000)
    assert [(c.node_id, c.host, c.meta["az"]) for c in out] == [("i-a", "127.0.1.4", "us-east-1a")]


def test_links_and_zones():
    assert rebase_link("https://management.azure.com/a/b?x=1&$skiptoken=2", "http://127.0.0.1:9") == (
        "http://127.0.0.1:9/a/b?x=1&$skiptoken=2"
    )
    assert region_from_zone("us-central1-a") == "us-central1"
    body = {"items": [{"instance": "https://www.googleapis.com/compute/v1/projects/p/zones/z-1/instances/vm-1"}]}
    assert gcp_members(body) == [("z-1", "vm-1")]
    with pytest.raises(BackendResponseError):
        gcp_members({"items": [{"instance": "https://x/y"}]})


# -- AWS via moto --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def aws(moto_server):
    # One VPC per module; tests isolate themselves by tag values and group names.
    moto_server.reset()
    ec2 = boto3.client("ec2", endpoint_url=moto_server.url, **CREDS)
    asg = boto3.client("autoscaling", endpoint_url=moto_server.url, **CREDS)
    vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    image = ec2.describe_images()["Images"][0]["ImageId"]
    yield {"ec2": ec2, "asg": asg, "subnet": subnet, "image": image, "url": moto_server.url}
    ec2.close()
    asg.close()


def run(aws, count, tags):
    resp = aws["ec2"].run_instances(
        ImageId=aws["image"],
        MinCount=count,
        MaxCount=count,
        SubnetId=aws["subnet"],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
    )
    return [i["InstanceId"] for i in resp["Instances"]]


def aws_config(aws, **kw):
    return AwsDiscoveryConfig(
        region=REGION, endpoint_url=aws["url"], access_key_id="testing", secret_access_key="testing", **kw
    )


@pytest.mark.servers
async def test_aws_instances_by_tag(aws):
    mine = run(aws, 2, {"rustyray-cluster": "prod"})
    run(aws, 1, {"rustyray-cluster": "staging"})
    stopped = run(aws, 1, {"rustyray-cluster": "prod"})
    aws["ec2"].stop_instances(InstanceIds=stopped)
    disco = AwsDiscovery(aws_config(aws, tag_filters=(("rustyray-cluster", "prod"),), port=7100))
    try:
        result = await disco.discover()
    finally:
        await disco.aclose()
    body = result.as_response()
    assert body["provider"] == "AWS" and body["region"] == REGION
    assert sorted(i["instance_id"] for i in body["instances"]) == sorted(mine)
    for inst in body["instances"]:
        assert inst["private_ip"].startswith("127.0.1.") and inst["az"] == "us-east-1a"
    assert {c.port for c in result.candidates} == {7100}


@pytest.mark.servers
async def test_aws_auto_scaling_group_members(aws):
    aws["asg"].create_launch_configuration(LaunchConfigurationName="lc", ImageId=aws["image"], InstanceType="t2.micro")
    aws["asg"].create_auto_scaling_group(
        AutoScalingGroupName="rustydb-asg",
        LaunchConfigurationName="lc",
        MinSize=3,
        MaxSize=3,
        DesiredCapacity=3,
        VPCZoneIdentifier=aws["subnet"],
    )
    run(aws, 2, {"other": "x"})  # not in the group
    members = [
        i["InstanceId"]
        for g in aws["asg"].describe_auto_scaling_groups(AutoScalingGroupNames=["rustydb-asg"])["AutoScalingGroups"]
        for i in g["Instances"]
    ]
    disco = AwsDiscovery(aws_config(aws, auto_scaling_group="rustydb-asg"))
    missing = AwsDiscovery(aws_config(aws, auto_scaling_group="nope"))
    try:
        result = await disco.discover()
        assert len(members) == 3
        assert sorted(i["instance_id"] for i in result.body["instances"]) == sorted(members)
        with pytest.raises(BackendResponseError, match="no Auto Scaling group"):
            await missing.discover()
    finally:
        await disco.aclose()
        await missing.aclose()


# -- Azure ---------------------------------------------------------------------------------------
async def test_azure_scale_set_follows_rebased_next_link(azure_double):
    for i in range(3):
        azure_double.add_vm("sub", "rg", "rustydb-vmss", i, f"127.0.2.{i + 1}", zone=str(i + 1))
    azure_double.add_vm("sub", "rg", "other", 0, "127.0.3.1")
    config = AzureDiscoveryConfig(
        subscription_id="sub",
        resource_group="rg",
        scale_set="rustydb-vmss",
        access_token="azure-test-token",
        base_url=azure_double.base_url,
    )
    disco = AzureDiscovery(config)
    try:
        result = await disco.discover()
    finally:
        await disco.aclose()
    assert result.as_response() == {
        "provider": "Azure",
        "region": "eastus",
        "instances": [
            {"instance_id": "rustydb-vmss_0", "private_ip": "127.0.2.1", "az": "eastus-1"},
            {"instance_id": "rustydb-vmss_1", "private_ip": "127.0.2.2", "az": "eastus-2"},
            {"instance_id": "rustydb-vmss_2", "private_ip": "127.0.2.3", "az": "eastus-3"},
        ],
    }
    assert sum(1 for path, q in azure_double.requests if "$skiptoken" in q) == 2  # one extra page each


async def test_azure_bad_token_and_unknown_scale_set(azure_double):
    azure_double.add_vm("sub", "rg", "vmss", 0, "127.0.2.1")
    base = {"subscription_id": "sub", "resource_group": "rg", "base_url": azure_double.base_url}
    bad_token = AzureDiscovery(AzureDiscoveryConfig(scale_set="vmss", access_token="wrong", **base))
    unknown = AzureDiscovery(AzureDiscoveryConfig(scale_set="nope", access_token="azure-test-token", **base))
    try:
        with pytest.raises(BackendResponseError) as info:
            await bad_token.discover()
        assert info.value.status == 401
        with pytest.raises(BackendResponseError) as info:
            await unknown.discover()
        assert info.value.status == 404
    finally:
        await bad_token.aclose()
        await unknown.aclose()


# -- GCP -----------------------------------------------------------------------------------------
async def test_gcp_instance_group_members(gcp_double):
    for i in range(3):
        gcp_double.add_instance("proj", "us-central1-a", "rustydb-ig", f"rustydb-{i}", f"127.0.4.{i + 1}")
    gcp_double.add_instance("proj", "us-central1-a", "rustydb-ig", "rustydb-stopped", "127.0.4.9", status="TERMINATED")
    gcp_double.add_instance("proj", "us-central1-a", "other-ig", "other-0", "127.0.5.1")
    config = GcpDiscoveryConfig(
        project="proj",
        zone="us-central1-a",
        instance_group="rustydb-ig",
        access_token="gcp-test-token",
        base_url=gcp_double.base_url,
    )
    disco = GcpDiscovery(config)
    try:
        result = await disco.discover()
    finally:
        await disco.aclose()
    assert result.as_response() == {
        "provider": "GCP",
        "region": "us-central1",
        "instances": [
            {"instance_id": f"rustydb-{i}", "private_ip": f"127.0.4.{i + 1}", "az": "us-central1-a"} for i in range(3)
        ],
    }
    list_calls = [p for m, p in gcp_double.requests if m == "POST"]
    assert len(list_calls) == 2  # paged two at a time


async def test_gcp_rejects_bad_token(gcp_double):
    gcp_double.add_instance("proj", "z-a", "ig", "vm", "127.0.4.1")
    config = GcpDiscoveryConfig(
        project="proj", zone="z-a", instance_group="ig", access_token="wrong", base_url=gcp_double.base_url
    )
    disco = GcpDiscovery(config)
    try:
        with pytest.raises(BackendResponseError) as info:
            await disco.discover()
        assert info.value.status == 401
    finally:
        await disco.aclose()
