# The seed's no-password deployment (../shared/seeds/004), written against
# Debian's python3-azure and pointed at berth: a service principal deploys a
# container group into a subnet of a virtual network; the group pulls its
# image from a Premium registry reachable only through a private endpoint, by
# a user-assigned managed identity holding AcrPull.
#
# Phases (argv[1]), each printing one JSON object:
#   setup   networks, identity, Premium registry (admin user off), AcrPush for
#           the pusher principal (PUSHER_OBJECT_ID) on the registry
#   (the Go test pushes the image as the pusher between the phases)
#   deploy  public access off with trusted services, private endpoint, AcrPull
#           for the identity, the group → Running and its program's output;
#           without the role a new group fails to pull; a group on another
#           virtual network can neither pull nor reach the registry
import json
import os
import sys
import time
import uuid

from azure.identity import ClientSecretCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import (
    Container, ContainerGroup, ContainerGroupIdentity, ContainerGroupSubnetId, EnvironmentVariable,
    ImageRegistryCredential, ResourceRequests, ResourceRequirements, UserAssignedIdentities)
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource import ResourceManagementClient

env = os.environ
SUB = env["AZURE_SUBSCRIPTION_ID"]
RG = "seedrg"
LOC = "westeurope"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
ACR_PUSH = "8311e382-0749-4cb8-b61a-304f252e45ec"

cred = ClientSecretCredential(env["AZURE_TENANT_ID"], env["AZURE_CLIENT_ID"], env["AZURE_CLIENT_SECRET"],
                              authority=env["AZURE_AUTHORITY_HOST"], instance_discovery=False)
kw = dict(base_url=env["BERTH_ENDPOINT"], credential_scopes=["https://management.core.windows.net//.default"])
resources = ResourceManagementClient(cred, SUB, **kw)
network = NetworkManagementClient(cred, SUB, **kw)
msi = ManagedServiceIdentityClient(cred, SUB, **kw)
acr = ContainerRegistryManagementClient(cred, SUB, **kw)
auth = AuthorizationManagementClient(cred, SUB, **kw)
aci = ContainerInstanceManagementClient(cred, SUB, **kw)


def role_id(guid):
    return f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def assign(scope, guid, principal):
    return auth.role_assignments.create(scope, str(uuid.uuid4()), {
        "role_definition_id": role_id(guid), "principal_id": principal, "principal_type": "ServicePrincipal"})


def vnet(name, prefix, subnets):
    return network.virtual_networks.begin_create_or_update(RG, name, {
        "location": LOC,
        "address_space": {"address_prefixes": [prefix]},
        "subnets": subnets,
    }).result()


def delegated(name, prefix):
    return {"name": name, "address_prefix": prefix,
            "delegations": [{"name": "aci", "service_name": "Microsoft.ContainerInstance/containerGroups"}]}


def setup(prefix, other_prefix):
    resources.resource_groups.create_or_update(RG, {"location": LOC})
    # prefix is a /23: its first /24 for container groups, its second for
    # the private endpoint (a delegated subnet cannot hold one).
    a, b, c, _ = prefix.split("/")[0].split(".")
    main = vnet("seedvnet", prefix, [delegated("aci", f"{a}.{b}.{c}.0/24"),
                                     {"name": "endpoints", "address_prefix": f"{a}.{b}.{int(c) + 1}.0/24"}])
    other = vnet("othervnet", other_prefix, [delegated("aci", other_prefix)])
    ident = msi.user_assigned_identities.create_or_update(RG, "pullid", {"location": LOC})
    reg = acr.registries.begin_create(RG, "seedacr", {
        "location": LOC, "sku": {"name": "Premium"}, "admin_user_enabled": False}).result()
    assert reg.admin_user_enabled is False
    assign(reg.id, ACR_PUSH, env["PUSHER_OBJECT_ID"])
    return {
        "login": reg.login_server, "registry_id": reg.id,
        "identity_id": ident.id, "identity_principal": ident.principal_id, "identity_client": ident.client_id,
        "subnet_id": [s.id for s in main.subnets if s.name == "aci"][0],
        "endpoint_subnet_id": [s.id for s in main.subnets if s.name == "endpoints"][0],
        "other_subnet_id": other.subnets[0].id,
    }


def group(name, image, subnet_id, identity_id, creds, command):
    return aci.container_groups.begin_create_or_update(RG, name, ContainerGroup(
        location=LOC, os_type="Linux", restart_policy="Never",
        identity=ContainerGroupIdentity(type="UserAssigned",
                                        user_assigned_identities={identity_id: UserAssignedIdentities()}),
        image_registry_credentials=creds,
        subnet_ids=[ContainerGroupSubnetId(id=subnet_id)],
        containers=[Container(name="app", image=image, command=command,
                              # berth's CA: the test image carries no CA bundle.
                              environment_variables=[EnvironmentVariable(name="BERTH_CA_PEM",
                                                                         secure_value=env["BERTH_CA_PEM"])],
                              resources=ResourceRequirements(requests=ResourceRequests(cpu=0.5, memory_in_gb=0.5)))],
    ))


def finished(name, deadline=120):
    end = time.time() + deadline
    while time.time() < end:
        g = aci.container_groups.get(RG, name)
        st = g.containers[0].instance_view.current_state if g.containers[0].instance_view else None
        if g.provisioning_state == "Failed" or (st and st.state == "Terminated"):
            return g
        time.sleep(0.5)
    raise SystemExit(f"group {name} did not finish: {g.provisioning_state}")


def failure(poller):
    try:
        poller.result()
    except Exception as e:  # azure.core.exceptions.HttpResponseError
        return str(e)
    return ""


def deploy(s):
    login, image = s["login"], s["login"] + "/app:v1"
    by_identity = [ImageRegistryCredential(server=login, identity=s["identity_id"])]
    reg = acr.registries.begin_update(RG, "seedacr", {
        "public_network_access": "Disabled", "network_rule_bypass_options": "AzureServices"}).result()
    assert reg.public_network_access == "Disabled", reg.public_network_access
    pe = network.private_endpoints.begin_create_or_update(RG, "seedacr-pe", {
        "location": LOC, "subnet": {"id": s["endpoint_subnet_id"]},
        "private_link_service_connections": [{"name": "seedacr", "private_link_service_id": s["registry_id"],
                                              "group_ids": ["registry"]}],
    }).result()
    conns = acr.private_endpoint_connections.list(RG, "seedacr")
    pull = assign(s["registry_id"], ACR_PULL, s["identity_principal"])
    out = {"pe_state": pe.provisioning_state,
           "connections": [c.private_link_service_connection_state.status for c in conns]}

    # The group in the subnet pulls by identity; its program asks the metadata
    # endpoint for a token (ManagedIdentityCredential) and lists repositories.
    group("seedgroup", image, s["subnet_id"], s["identity_id"], by_identity,
          ["/app", "acr-repos", "https://" + login]).result()
    g = finished("seedgroup")
    out["group"] = {"provisioning": g.provisioning_state, "ip": g.ip_address.ip if g.ip_address else "",
                    "identity_client": g.identity.user_assigned_identities[s["identity_id"]].client_id,
                    "exit_code": g.containers[0].instance_view.current_state.exit_code,
                    "logs": aci.containers.list_logs(RG, "seedgroup", "app").content}

    # Without AcrPull a new group cannot pull.
    auth.role_assignments.delete(s["registry_id"], pull.name)
    out["no_role"] = failure(group("norole", image, s["subnet_id"], s["identity_id"], by_identity, ["/app", "echo", "x"]))
    g = aci.container_groups.get(RG, "norole")
    out["no_role_state"] = g.provisioning_state
    out["no_role_events"] = [f"{e.type} {e.name}: {e.message}" for e in (g.containers[0].instance_view.events or [])]

    # With the role back, a group on a virtual network without a private
    # endpoint to the registry still cannot pull from it …
    assign(s["registry_id"], ACR_PULL, s["identity_principal"])
    out["other_vnet"] = failure(group("othervnet", image, s["other_subnet_id"], s["identity_id"], by_identity,
                                      ["/app", "echo", "x"]))
    # … nor reach it (its image comes from berth's default registry).
    open_creds = [ImageRegistryCredential(server=env["BERTH_REGISTRY"], username=env["AZURE_CLIENT_ID"],
                                          password=env["AZURE_CLIENT_SECRET"])]
    group("otherreach", env["OPEN_IMAGE"], s["other_subnet_id"], s["identity_id"], open_creds,
          ["/app", "status", "https://" + login + "/v2/"]).result()
    g = finished("otherreach")
    out["other_reach_logs"] = aci.containers.list_logs(RG, "otherreach", "app").content
    return out


if __name__ == "__main__":
    if sys.argv[1] == "setup":
        print(json.dumps(setup(sys.argv[2], sys.argv[3])))
    else:
        print(json.dumps(deploy(json.loads(sys.argv[2]))))
