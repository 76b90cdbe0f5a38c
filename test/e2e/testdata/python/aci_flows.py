#!/usr/bin/python3
"""The ACI management library's documented flows, run against berth.

The flows are those of "Azure Container Instances libraries for Python"
(the aci-docs-sample-python walkthrough): a single-container group, a
multi-container group with a sidecar, a task-based group with a command
override and environment variables under restart policy Never whose logs are
read once it has completed, list, get with the instance view, and delete.
The library calls are the documented ones; only where they point (berth) and
which image they use (berth's test image in berth's registry) differ.

Configuration is the environment `berth env` prints (AZURE_TENANT_ID,
AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_SUBSCRIPTION_ID,
AZURE_AUTHORITY_HOST, BERTH_ENDPOINT, BERTH_REGISTRY, REQUESTS_CA_BUNDLE)
plus:

    BERTH_PY_IMAGE            the image every container runs
    BERTH_PY_RESOURCE_GROUP   the resource group the flows create and delete
    BERTH_PY_LOCATION         optional, default eastus

Run it with Debian's interpreter, /usr/bin/python3 (python3-azure).

Output: one line per result, `RESULT {json}`, with a "step" field; a line
`READY-TO-DELETE` once everything is created, after which the program waits
for a line on stdin (the sample's "Press ENTER to delete") before it deletes
what it made. Any failed expectation or error exits with status 1.
"""

import json
import os
import sys
import time
import traceback
from urllib.parse import parse_qs, urlparse

from azure.core.exceptions import ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import (
    Container,
    ContainerGroup,
    ContainerGroupNetworkProtocol,
    ContainerGroupRestartPolicy,
    ContainerPort,
    EnvironmentVariable,
    ImageRegistryCredential,
    IpAddress,
    OperatingSystemTypes,
    Port,
    ResourceRequests,
    ResourceRequirements,
)
from azure.mgmt.resource import ResourceManagementClient

# The test image serves HTTP on 8080 (the sample's aci-helloworld: 80).
APP_PORT = 8080
# The task's command: a shell running two commands, as the documentation
# shows for more than one command; print-env shows the variables it got.
TASK_COMMAND = ["/bin/sh", "-c", "echo FOO BAR && /app print-env"]
# The sidecar fetches the app through the group's shared localhost, then
# stays up (the sample's aci-tutorial-sidecar polls the app likewise).
SIDECAR_COMMAND = [
    "/bin/sh",
    "-c",
    "/app fetch http://localhost:%d/ && exec /app sleep 3600" % APP_PORT,
]
ARM_SCOPE = "https://management.core.windows.net/.default"
WAIT_SECONDS = 180


class Failure(Exception):
    """An expectation the flows have of the service did not hold."""


def check(cond, message):
    if not cond:
        raise Failure(message)


def env(name, default=None):
    value = os.environ.get(name, default)
    if not value:
        raise Failure("environment variable %s is not set (eval \"$(berth env)\")" % name)
    return value


def report(step, **fields):
    fields["step"] = step
    print("RESULT " + json.dumps(fields, sort_keys=True, default=str), flush=True)


class RequestLog:
    """Records method, path, api-version and status of every response the
    clients receive (azure-core's raw_response_hook)."""

    def __init__(self):
        self.entries = []

    def __call__(self, response):
        req = response.http_request
        url = urlparse(req.url)
        self.entries.append(
            {
                "method": req.method,
                "host": url.netloc,
                "path": url.path,
                "api_version": parse_qs(url.query).get("api-version", [""])[0],
                "status": response.http_response.status_code,
            }
        )


def clients(log):
    endpoint = env("BERTH_ENDPOINT")
    env("REQUESTS_CA_BUNDLE")  # berth's CA: requests reads it by itself
    credential = ClientSecretCredential(
        env("AZURE_TENANT_ID"),
        env("AZURE_CLIENT_ID"),
        env("AZURE_CLIENT_SECRET"),
        authority=env("AZURE_AUTHORITY_HOST"),
        instance_discovery=False,
    )
    subscription = env("AZURE_SUBSCRIPTION_ID")
    aci = ContainerInstanceManagementClient(
        credential, subscription, base_url=endpoint, credential_scopes=[ARM_SCOPE], raw_response_hook=log
    )
    res = ResourceManagementClient(
        credential, subscription, base_url=endpoint, credential_scopes=[ARM_SCOPE], raw_response_hook=log
    )
    return aci, res


def registry_credentials():
    # berth's registry is private: the service principal pulls from it.
    return [
        ImageRegistryCredential(
            server=env("BERTH_REGISTRY"),
            username=env("AZURE_CLIENT_ID"),
            password=env("AZURE_CLIENT_SECRET"),
        )
    ]


def container_states(group):
    out = []
    for c in group.containers:
        iv = c.instance_view
        cur = iv.current_state if iv else None
        out.append(
            {
                "name": c.name,
                "image": c.image,
                "command": c.command,
                "state": cur.state if cur else None,
                "exit_code": cur.exit_code if cur else None,
                "restart_count": iv.restart_count if iv else None,
                "cpu": c.resources.requests.cpu if c.resources else None,
                "memory_in_gb": c.resources.requests.memory_in_gb if c.resources else None,
                "environment": {e.name: e.value for e in (c.environment_variables or [])},
                "events": [e.name for e in (iv.events or [])] if iv else [],
            }
        )
    return out


def group_fields(group):
    ip = group.ip_address
    return {
        "name": group.name,
        "id": group.id,
        "location": group.location,
        "provisioning_state": group.provisioning_state,
        "state": group.instance_view.state if group.instance_view else None,
        "restart_policy": group.restart_policy,
        "ip": ip.ip if ip else None,
        "fqdn": ip.fqdn if ip else None,
        "dns_name_label": ip.dns_name_label if ip else None,
        "ports": [p.port for p in ip.ports] if ip and ip.ports else [],
        "containers": container_states(group),
        # GET keeps a registry credential's server and username, never its password.
        "registry_servers": [r.server for r in (group.image_registry_credentials or [])],
        "registry_usernames": [r.username for r in (group.image_registry_credentials or [])],
        "registry_passwords": [r.password for r in (group.image_registry_credentials or []) if r.password],
    }


def wait_state(aci_client, rg, name, done):
    """Gets the group until its instance view's state is in done (bounded)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        group = aci_client.container_groups.get(rg, name)
        state = group.instance_view.state if group.instance_view else None
        if state in done:
            return group
        if time.monotonic() > deadline:
            raise Failure("%s: instance view state %r, want one of %s" % (name, state, sorted(done)))
        time.sleep(0.5)


def create_container_group(aci_client, resource_group, container_group_name, container_image_name):
    """Single-container group with a public address and a DNS name label."""
    container_resource_requests = ResourceRequests(memory_in_gb=1, cpu=1.0)
    container_resource_requirements = ResourceRequirements(requests=container_resource_requests)
    container = Container(
        name=container_group_name,
        image=container_image_name,
        resources=container_resource_requirements,
        ports=[ContainerPort(port=APP_PORT)],
    )
    ports = [Port(protocol=ContainerGroupNetworkProtocol.tcp, port=APP_PORT)]
    group_ip_address = IpAddress(ports=ports, dns_name_label=container_group_name, type="Public")
    group = ContainerGroup(
        location=resource_group.location,
        containers=[container],
        os_type=OperatingSystemTypes.linux,
        ip_address=group_ip_address,
        image_registry_credentials=registry_credentials(),
    )

    created = aci_client.container_groups.begin_create_or_update(
        resource_group.name, container_group_name, group
    ).result()
    check(created.provisioning_state == "Succeeded", "single: create ended %r" % created.provisioning_state)

    container_group = wait_state(aci_client, resource_group.name, container_group_name, {"Running"})
    fields = group_fields(container_group)
    check(fields["ip"], "single: no ip_address.ip")
    check(fields["fqdn"], "single: no ip_address.fqdn")
    check(fields["containers"][0]["state"] == "Running", "single: container %r" % fields["containers"][0])
    report("single", **fields)


def create_container_group_multi(aci_client, resource_group, container_group_name, container_image_1, container_image_2):
    """Two containers, an application and a sidecar, in one group."""
    container_resource_requests = ResourceRequests(memory_in_gb=2, cpu=1.0)
    container_resource_requirements = ResourceRequirements(requests=container_resource_requests)
    container_1 = Container(
        name=container_group_name + "-1",
        image=container_image_1,
        resources=container_resource_requirements,
        ports=[ContainerPort(port=APP_PORT)],
    )
    container_2 = Container(
        name=container_group_name + "-2",
        image=container_image_2,
        resources=container_resource_requirements,
        command=SIDECAR_COMMAND,
    )
    ports = [Port(protocol=ContainerGroupNetworkProtocol.tcp, port=APP_PORT)]
    group_ip_address = IpAddress(ports=ports, dns_name_label=container_group_name, type="Public")
    group = ContainerGroup(
        location=resource_group.location,
        containers=[container_1, container_2],
        os_type=OperatingSystemTypes.linux,
        ip_address=group_ip_address,
        image_registry_credentials=registry_credentials(),
    )

    created = aci_client.container_groups.begin_create_or_update(
        resource_group.name, container_group_name, group
    ).result()
    check(created.provisioning_state == "Succeeded", "multi: create ended %r" % created.provisioning_state)

    container_group = wait_state(aci_client, resource_group.name, container_group_name, {"Running"})
    fields = group_fields(container_group)
    check(fields["ip"], "multi: no ip_address.ip")
    check(len(fields["containers"]) == 2, "multi: containers %r" % fields["containers"])

    # The sidecar's output: what it fetched from the app over localhost.
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        logs = aci_client.containers.list_logs(resource_group.name, container_group_name, container_2.name)
        if logs.content and logs.content.strip().startswith("{"):
            break
        check(time.monotonic() < deadline, "multi: sidecar logs %r" % logs.content)
        time.sleep(0.5)
    fields["sidecar"] = container_2.name
    fields["sidecar_logs"] = logs.content
    report("multi", **fields)


def run_task_based_container(aci_client, resource_group, container_group_name, container_image_name, command):
    """A task: command override, environment variables, restart policy
    Never; its logs are read once it has completed."""
    env_var_1 = EnvironmentVariable(name="NumWords", value="5")
    env_var_2 = EnvironmentVariable(name="MinLength", value="8")

    container_resource_requests = ResourceRequests(memory_in_gb=1, cpu=1.0)
    container_resource_requirements = ResourceRequirements(requests=container_resource_requests)
    container = Container(
        name=container_group_name,
        image=container_image_name,
        resources=container_resource_requirements,
        command=command,
        environment_variables=[env_var_1, env_var_2],
    )
    group = ContainerGroup(
        location=resource_group.location,
        containers=[container],
        os_type=OperatingSystemTypes.linux,
        restart_policy=ContainerGroupRestartPolicy.never,
        image_registry_credentials=registry_credentials(),
    )

    created = aci_client.container_groups.begin_create_or_update(
        resource_group.name, container_group_name, group
    ).result()
    check(created.provisioning_state == "Succeeded", "task: create ended %r" % created.provisioning_state)

    container_group = wait_state(aci_client, resource_group.name, container_group_name, {"Succeeded", "Failed"})
    check(
        str(container_group.provisioning_state).lower() == "succeeded",
        "task: provisioning state %r" % container_group.provisioning_state,
    )
    fields = group_fields(container_group)
    check(fields["state"] == "Succeeded", "task: instance view state %r" % fields["state"])
    c = fields["containers"][0]
    check(c["state"] == "Terminated" and c["exit_code"] == 0, "task: container %r" % c)

    logs = aci_client.containers.list_logs(resource_group.name, container_group_name, container.name)
    fields["logs"] = logs.content
    report("task", **fields)


def list_container_groups(aci_client, resource_group, expected):
    """list_by_resource_group and list: names, and no instance view."""
    by_rg = {}
    for container_group in aci_client.container_groups.list_by_resource_group(resource_group.name):
        by_rg[container_group.name] = container_group.instance_view is not None
    prefix = resource_group.id.lower() + "/"
    by_sub = {}
    for container_group in aci_client.container_groups.list():
        if container_group.id.lower().startswith(prefix):
            by_sub[container_group.name] = container_group.instance_view is not None
    for name in expected:
        check(name in by_rg, "list_by_resource_group lacks %s: %s" % (name, sorted(by_rg)))
        check(name in by_sub, "list lacks %s: %s" % (name, sorted(by_sub)))
    check(not any(by_rg.values()), "list_by_resource_group returned an instance view: %r" % by_rg)
    check(not any(by_sub.values()), "list returned an instance view: %r" % by_sub)
    report("list", by_resource_group=sorted(by_rg), by_subscription=sorted(by_sub))


def print_container_group_details(aci_client, resource_group, container_group_name):
    """get returns the group with its instance view populated."""
    container_group = aci_client.container_groups.get(resource_group.name, container_group_name)
    check(container_group.instance_view is not None, "get: no instance view")
    fields = group_fields(container_group)
    for c in fields["containers"]:
        check(c["state"] == "Running", "get: container %r" % c)
    fields["group_events"] = [e.name for e in (container_group.instance_view.events or [])]
    report("get", **fields)


def delete_all(aci_client, res_client, resource_group_name, names):
    gone = {}
    for name in names:
        aci_client.container_groups.begin_delete(resource_group_name, name).result()
        try:
            aci_client.container_groups.get(resource_group_name, name)
            gone[name] = "still there"
        except ResourceNotFoundError as e:
            gone[name] = e.error.code if e.error else "ResourceNotFound"
    for name, code in gone.items():
        check(code == "ResourceNotFound", "get after delete of %s: %s" % (name, code))
    left = [g.name for g in aci_client.container_groups.list_by_resource_group(resource_group_name)]
    check(not left, "groups left after delete: %r" % left)
    res_client.resource_groups.begin_delete(resource_group_name).result()
    try:
        res_client.resource_groups.get(resource_group_name)
        rg_after = "still there"
    except ResourceNotFoundError as e:
        rg_after = e.error.code if e.error else "ResourceNotFound"
    check(rg_after == "ResourceGroupNotFound", "get of resource group after delete: %s" % rg_after)
    report("delete", get_after_delete=gone, left=left, resource_group_after_delete=rg_after)


def main():
    image = env("BERTH_PY_IMAGE")
    resource_group_name = env("BERTH_PY_RESOURCE_GROUP")
    azure_region = env("BERTH_PY_LOCATION", "eastus")
    container_group_name = "aci-py"
    multi_container_group_name = container_group_name + "-multi"
    task_container_group_name = container_group_name + "-task"

    log = RequestLog()
    aciclient, resclient = clients(log)
    try:
        resclient.resource_groups.create_or_update(resource_group_name, {"location": azure_region})
        resource_group = resclient.resource_groups.get(resource_group_name)

        create_container_group(aciclient, resource_group, container_group_name, image)
        create_container_group_multi(aciclient, resource_group, multi_container_group_name, image, image)
        run_task_based_container(aciclient, resource_group, task_container_group_name, image, TASK_COMMAND)
        names = [container_group_name, multi_container_group_name, task_container_group_name]
        list_container_groups(aciclient, resource_group, names)
        print_container_group_details(aciclient, resource_group, multi_container_group_name)

        print("READY-TO-DELETE", flush=True)
        sys.stdin.readline()  # the sample's "Press ENTER to delete"
        delete_all(aciclient, resclient, resource_group_name, names)
    finally:
        report("requests", requests=log.entries)


if __name__ == "__main__":
    try:
        main()
    except Exception as err:  # every failure: a message and status 1
        traceback.print_exc()
        print("FAILED %s: %s" % (type(err).__name__, err), flush=True)
        sys.exit(1)
    print("OK", flush=True)
