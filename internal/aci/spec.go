package aci

import (
	"context"
	"encoding/base64"
	"errors"
	"sort"
	"strings"

	"github.com/berth-dev/berth/internal/runtime"
)

// runtimeSpec translates a group into what the runtime runs. network is
// the runtime network of the group's subnet ("" for public groups).
func (s *Service) runtimeSpec(g *Group, network string) runtime.GroupSpec {
	spec := runtime.GroupSpec{
		ID:            g.RuntimeID,
		RestartPolicy: runtime.RestartPolicy(g.RestartPolicy),
		Labels: map[string]string{
			"berth.subscription": g.Subscription, "berth.resourceGroup": g.ResourceGroup, "berth.containerGroup": g.Name,
		},
		Network: network,
	}
	for _, c := range g.InitContainers {
		spec.InitContainers = append(spec.InitContainers, containerSpec(c))
	}
	for _, c := range g.Containers {
		spec.Containers = append(spec.Containers, containerSpec(c))
	}
	for _, v := range g.Volumes {
		spec.Volumes = append(spec.Volumes, volumeSpec(v))
	}
	if d := g.DNSConfig; d != nil {
		spec.DNS = &runtime.DNSSpec{Nameservers: d.NameServers, Search: strings.Fields(d.SearchDomains), Options: strings.Fields(d.Options)}
	}
	byIdentity := map[string]string{} // registry host → client id
	for _, rc := range g.RegistryCredentials {
		if clientID := credentialClientID(g, rc); clientID != "" {
			byIdentity[registryHost(rc.Server)] = clientID
			continue
		}
		if rc.Username == "" && rc.Password == "" {
			continue
		}
		spec.Credentials = append(spec.Credentials, runtime.RegistryCredential{Server: rc.Server, Username: rc.Username, Password: rc.Password})
	}
	if len(byIdentity) > 0 {
		pull := s.Pull
		spec.ResolveCredential = func(ctx context.Context, host string) (runtime.RegistryCredential, bool, error) {
			clientID, ok := byIdentity[registryHost(host)]
			if !ok {
				return runtime.RegistryCredential{}, false, nil
			}
			if pull == nil {
				return runtime.RegistryCredential{}, false, errors.New("pulls by managed identity are not available")
			}
			user, pass, err := pull.RegistryCredential(ctx, clientID, host)
			if err != nil {
				return runtime.RegistryCredential{}, false, err
			}
			return runtime.RegistryCredential{Server: host, Username: user, Password: pass}, true, nil
		}
	}
	return spec
}

// credentialClientID is the client id of the managed identity a registry
// credential pulls as ("" for a user name and password): its identity, or
// else its identityUrl, naming one of the group's identities.
func credentialClientID(g *Group, rc RegistryCredential) string {
	ref := rc.Identity
	if ref == "" {
		ref = rc.IdentityURL
	}
	switch {
	case ref == "":
		return ""
	case systemCredential(ref):
		if g.Identity.HasSystem() {
			return g.Identity.ClientID
		}
	default:
		if u := g.Identity.User(ref); u != nil {
			return u.ClientID
		}
	}
	return ""
}

// registryHost is a credential's server as a registry host (no scheme, no
// trailing slash, lower case).
func registryHost(server string) string {
	server = strings.TrimPrefix(strings.TrimPrefix(server, "https://"), "http://")
	return strings.ToLower(strings.TrimSuffix(server, "/"))
}

func containerSpec(c Container) runtime.ContainerSpec {
	rc := runtime.ContainerSpec{Name: c.Name, Image: c.Image, Command: c.Command}
	for _, e := range c.Env {
		rc.Env = append(rc.Env, runtime.EnvVar{Name: e.Name, Value: e.Value})
	}
	// ACI: with no limits, a container's cap is its request.
	lim := c.Requests
	if c.Limits != nil {
		lim = *c.Limits
		if lim.CPU == 0 {
			lim.CPU = c.Requests.CPU
		}
		if lim.MemoryGB == 0 {
			lim.MemoryGB = c.Requests.MemoryGB
		}
	}
	rc.CPU = lim.CPU
	rc.MemoryBytes = int64(lim.MemoryGB * (1 << 30))
	if gpu := c.Requests.GPU; gpu != nil {
		rc.GPUs = gpu.Count
	}
	for _, p := range c.Ports {
		rc.Ports = append(rc.Ports, runtime.Port{Port: p.Port, Protocol: p.Protocol})
	}
	for _, m := range c.VolumeMounts {
		rc.Mounts = append(rc.Mounts, runtime.Mount{Volume: m.Name, Path: m.MountPath, ReadOnly: m.ReadOnly})
	}
	if sc := c.SecurityContext; sc != nil {
		rc.Security = &runtime.SecurityContext{
			Privileged: sc.Privileged, AllowPrivilegeEscalation: sc.AllowPrivilegeEscalation,
			RunAsUser: sc.RunAsUser, RunAsGroup: sc.RunAsGroup,
			CapabilitiesAdd: sc.CapabilitiesAdd, CapabilitiesDrop: sc.CapabilitiesDrop,
			SeccompProfile: sc.SeccompProfile,
		}
	}
	rc.Liveness, rc.Readiness = runtimeProbe(c.LivenessProbe), runtimeProbe(c.ReadinessProbe)
	// configMap key-value pairs are exposed as environment variables, after
	// the declared ones (sorted for a stable order).
	if len(c.ConfigMap) > 0 {
		keys := make([]string, 0, len(c.ConfigMap))
		for k := range c.ConfigMap {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			rc.Env = append(rc.Env, runtime.EnvVar{Name: k, Value: c.ConfigMap[k]})
		}
	}
	return rc
}

func volumeSpec(v Volume) runtime.VolumeSpec {
	vs := runtime.VolumeSpec{Name: v.Name}
	switch {
	case v.AzureFile != nil:
		vs.Kind = runtime.VolumeShare
		vs.Share = &runtime.ShareSpec{Account: v.AzureFile.StorageAccountName, Name: v.AzureFile.ShareName, ReadOnly: v.AzureFile.ReadOnly}
	case v.GitRepo != nil:
		vs.Kind = runtime.VolumeGitRepo
		vs.GitRepo = &runtime.GitRepoSpec{Repository: v.GitRepo.Repository, Directory: v.GitRepo.Directory, Revision: v.GitRepo.Revision}
	case v.Secret != nil:
		vs.Kind = runtime.VolumeSecret
		vs.Files = map[string][]byte{}
		for name, b64 := range v.Secret {
			b, err := base64.StdEncoding.DecodeString(b64)
			if err != nil {
				b = []byte(b64) // validation refuses bad base64; never reached
			}
			vs.Files[name] = b
		}
	default:
		vs.Kind = runtime.VolumeEmptyDir
	}
	return vs
}

// network resolves the runtime network a group joins ("" for public).
func (s *Service) network(ctx context.Context, g *Group) (string, error) {
	switch {
	case len(g.SubnetIDs) > 0:
		if s.Networks == nil {
			return "", subnetNotFound(g.SubnetIDs[0].ID)
		}
		return s.Networks.Subnet(ctx, g.SubnetIDs[0].ID)
	case g.NetworkProfileID != "":
		if s.Networks == nil {
			return "", networkProfileNotFound(g.NetworkProfileID)
		}
		return s.Networks.NetworkProfile(ctx, g.NetworkProfileID)
	}
	return "", nil
}
