"""With HostedZoneId, the stack points the API's own host name at the load balancer (emulator, over HTTP)."""

from __future__ import annotations

import urllib.request

import boto3

from tools.emulator.provisioner import EmulatorProvisioner

REGION = "us-east-1"


def test_alias_record_points_the_api_name_at_the_load_balancer(emulator):
    req = urllib.request.Request(f"{emulator}/moto-api/reset", method="POST")  # noqa: S310 - local emulator
    urllib.request.urlopen(req, timeout=10).read()  # noqa: S310
    session = boto3.Session(region_name=REGION)
    ec2 = session.client("ec2", endpoint_url=emulator)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{'ab'[i]}")[
        "Subnet"]["SubnetId"] for i in range(2)]  # fmt: skip
    cert = session.client("acm", endpoint_url=emulator).request_certificate(DomainName="api.example.com")
    route53 = session.client("route53", endpoint_url=emulator)
    zone = route53.create_hosted_zone(Name="example.com", CallerReference="t")["HostedZone"]["Id"].split("/")[-1]

    outputs = EmulatorProvisioner(session, emulator, REGION).provision(
        "fraud-dns",
        {"EnvName": "dns", "VpcId": vpc, "PrivateSubnetIds": ",".join(subnets), "PublicSubnetIds": ",".join(subnets),
         "CertificateArn": cert["CertificateArn"], "ApiDomainName": "api.example.com", "HostedZoneId": zone},
    )  # fmt: skip

    assert outputs["ApiUrl"] == "https://api.example.com"
    records = route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    alias = [r for r in records if r["Name"].rstrip(".") == "api.example.com" and r["Type"] == "A"]
    assert len(alias) == 1, records
    assert alias[0]["AliasTarget"]["DNSName"].rstrip(".") == outputs["LoadBalancerDnsName"]
