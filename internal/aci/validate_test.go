package aci

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/apierr"
)

func ptr[T any](v T) *T { return &v }

// validGroup passes Validate; each case below breaks one rule.
func validGroup() *Group {
	return &Group{
		Subscription: "sub", ResourceGroup: "rg", Name: "web", Location: "westeurope",
		SKU: "Standard", OSType: "Linux", RestartPolicy: "Always",
		Containers: []Container{{
			Name: "app", Image: "127.0.0.1:7444/app:v1", Requests: Resources{CPU: 1, MemoryGB: 1.5},
			Ports: []Port{{Port: 80, Protocol: "TCP"}}, Env: []EnvVar{{Name: "MODE", Value: "x"}},
			VolumeMounts:   []VolumeMount{{Name: "work1", MountPath: "/work"}},
			LivenessProbe:  &Probe{Exec: []string{"true"}, PeriodSeconds: ptr(5)},
			ReadinessProbe: &Probe{HTTPGet: &HTTPGet{Port: 80, Scheme: "http"}},
			SecurityContext: &SecurityContext{CapabilitiesAdd: []string{"NET_ADMIN", "CAP_SYS_TIME"}, RunAsUser: ptr(int64(1000)),
				SeccompProfile: "eyJkZWZhdWx0QWN0aW9uIjoiU0NNUF9BQ1RfQUxMT1cifQ=="},
		}},
		InitContainers: []Container{{Name: "init", Image: "127.0.0.1:7444/tools:v1", VolumeMounts: []VolumeMount{{Name: "work1", MountPath: "/w"}}}},
		Volumes: []Volume{{Name: "work1", EmptyDir: true}, {Name: "secret1", Secret: map[string]string{"token": "dG9rZW4="}},
			{Name: "share1", AzureFile: &AzureFile{ShareName: "s", StorageAccountName: "a"}}, {Name: "repo1", GitRepo: &GitRepo{Repository: "file:///r", Directory: "app"}}},
		IPAddress:            &IPAddress{Type: "Public", Ports: []Port{{Port: 80, Protocol: "TCP"}}, DNSNameLabel: "webapp"},
		RegistryCredentials:  []RegistryCredential{{Server: "127.0.0.1:7444", Username: "u", Password: "p"}},
		DNSConfig:            &DNSConfig{NameServers: []string{"10.0.0.10"}},
		Diagnostics:          &Diagnostics{LogAnalytics: &LogAnalytics{WorkspaceID: "w", WorkspaceKey: "k"}},
		EncryptionProperties: &EncryptionProperties{VaultBaseURL: "https://kv", KeyName: "k", KeyVersion: "1"},
		Extensions:           []Extension{{Name: "x", ExtensionType: "t", Version: "1"}},
		Priority:             "Regular",
	}
}

func TestValidateAccepts(t *testing.T) {
	if err := Validate(validGroup()); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(g *Group){
		"gpu group up to its sku's limits": func(g *Group) {
			g.Containers[0].Requests = Resources{CPU: 6, MemoryGB: 56, GPU: &GPU{Count: 1, SKU: "K80"}}
		},
		"private group in a subnet": func(g *Group) {
			g.IPAddress.Type, g.SubnetIDs = "Private", []SubnetID{{ID: "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/virtualNetworks/v/subnets/a"}}
		},
		"spot without inbound connectivity":  func(g *Group) { g.Priority, g.IPAddress = "Spot", nil },
		"confidential privileged":            func(g *Group) { g.SKU, g.Containers[0].SecurityContext.Privileged = "Confidential", ptr(true) },
		"fractional cpu":                     func(g *Group) { g.Containers[0].Requests.CPU = 0.25 },
		"custom provisioning timeout":        func(g *Group) { g.ProvisioningTimeoutSeconds, g.IsCustomProvisioningTimeout = 600, true },
		"relative mount path (ACI takes it)": func(g *Group) { g.Containers[0].VolumeMounts[0].MountPath = "files" },
		"udp port":                           func(g *Group) { g.Containers[0].Ports[0].Protocol, g.IPAddress.Ports[0].Protocol = "UDP", "UDP" },
	} {
		g := validGroup()
		edit(g)
		if err := Validate(g); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestValidateRules(t *testing.T) {
	for _, tc := range []struct {
		name, code, msg string
		edit            func(g *Group)
	}{
		{"group name", "InvalidContainerGroupName", "The container group name 'Web_1' is invalid.", func(g *Group) { g.Name = "Web_1" }},
		{"group name double hyphen", "InvalidContainerGroupName", "'a--b'", func(g *Group) { g.Name = "a--b" }},
		{"location", "LocationRequired", "The location property is required", func(g *Group) { g.Location = " " }},
		{"no os type", "InvalidOsType", "The 'osType' for container group '<null>' is invalid", func(g *Group) { g.OSType = "" }},
		{"windows", "OsTypeNotSupported", "The requested OS type 'Windows' is not supported in location 'westeurope'.", func(g *Group) { g.OSType = "Windows" }},
		{"timeout too long", "InvalidProvisioningTimeout", "'3600'", func(g *Group) { g.ProvisioningTimeoutSeconds, g.IsCustomProvisioningTimeout = 3600, true }},
		{"no containers", "NoContainersInContainerGroup", "must contain at least one container", func(g *Group) { g.Containers = nil }},
		{"61 containers", "TooManyContainersInContainerGroup", "exceeds the limit of 60", func(g *Group) {
			for i := 0; i < 60; i++ {
				g.Containers = append(g.Containers, Container{Name: "c" + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + string(rune('a'+i/26)), Image: "i", Requests: Resources{CPU: 0.01, MemoryGB: 0.01}})
			}
		}},
		{"more credentials than containers", "MoreImageRegistryCredentialsThanContainers", "More image registry credentials provided than containers in container group 'web'.", func(g *Group) {
			g.RegistryCredentials = append(g.RegistryCredentials, RegistryCredential{Server: "b"})
		}},
		{"registry server", "InvalidImageRegistryServer", "'https://r'", func(g *Group) { g.RegistryCredentials[0].Server = "https://r" }},
		{"container name", "InvalidContainerName", "The container name 'App'", func(g *Group) { g.Containers[0].Name = "App" }},
		{"duplicate container", "DuplicateContainerName", "Duplicate container name 'app'", func(g *Group) { g.Containers = append(g.Containers, g.Containers[0]) }},
		{"init container name clashes", "DuplicateContainerName", "Duplicate container name 'app'", func(g *Group) { g.InitContainers[0].Name = "app" }},
		{"init container name", "InvalidContainerName", "The init container name '-init'", func(g *Group) { g.InitContainers[0].Name = "-init" }},
		{"image", "InvalidImageName", "The image name '' of container 'app'", func(g *Group) { g.Containers[0].Image = "" }},
		{"init image", "InvalidImageName", "of init container 'init'", func(g *Group) { g.InitContainers[0].Image = "a b" }},
		{"env name", "InvalidContainerEnvironmentVariable", "The environment variable name in container 'app' of container group 'web' is invalid. A valid environment variable name must start with alphabetic character or '_', followed by a string of alphanumeric characters or '_' (e.g. 'my_name',  or 'MY_NAME',  or 'MyName').", func(g *Group) {
			g.Containers[0].Env[0].Name = "discovery.type"
		}},
		{"env name digit", "InvalidContainerEnvironmentVariable", "container 'app'", func(g *Group) { g.Containers[0].Env[0].Name = "1ABC" }},
		{"duplicate env", "DuplicateEnvironmentVariables", "Duplicate environment variable 'MODE'", func(g *Group) {
			g.Containers[0].Env = append(g.Containers[0].Env, EnvVar{Name: "MODE"})
		}},
		{"no requests", "ResourceRequestsNotSpecified", "Both memory and CPU requests are required", func(g *Group) { g.Containers[0].Requests = Resources{} }},
		{"zero cpu", "InvalidContainerResourceRequests", "cpu and memoryInGB must be greater than 0", func(g *Group) { g.Containers[0].Requests.CPU = 0 }},
		{"limit below request", "InvalidContainerResourceLimits", "must be greater than or equal to its resource requests", func(g *Group) {
			g.Containers[0].Limits = &Resources{CPU: 0.5, MemoryGB: 2}
		}},
		{"limit above group maximum", "InvalidContainerResourceLimits", "exceed the maximum per container group of '4' CPU and '16' GB memory", func(g *Group) {
			g.Containers[0].Limits = &Resources{CPU: 8, MemoryGB: 2}
		}},
		{"group cpu", "ResourceRequestsNotAvailable", "The requested resource with '5' CPU and '1.5' GB memory is not available in the location 'westeurope'.", func(g *Group) {
			g.Containers[0].Requests.CPU = 5
		}},
		{"group memory", "ResourceRequestsNotAvailable", "'16.5' GB memory", func(g *Group) { g.Containers[0].Requests.MemoryGB = 16.5 }},
		{"gpu group memory", "ResourceRequestsNotAvailable", "The maximum per container group is '6' CPU and '56' GB memory.", func(g *Group) {
			g.Containers[0].Requests = Resources{CPU: 1, MemoryGB: 57, GPU: &GPU{Count: 1, SKU: "K80"}}
		}},
		{"gpu sku", "InvalidGpuSku", "'A100'", func(g *Group) { g.Containers[0].Requests.GPU = &GPU{Count: 1, SKU: "A100"} }},
		{"gpu count", "InvalidGpuCount", "The GPU count '3'", func(g *Group) { g.Containers[0].Requests.GPU = &GPU{Count: 3, SKU: "V100"} }},
		{"gpu total", "InvalidGpuCount", "The total GPU count '3'", func(g *Group) {
			g.Containers[0].Requests.GPU = &GPU{Count: 1, SKU: "V100"}
			g.Containers = append(g.Containers, Container{Name: "b", Image: "i", Requests: Resources{CPU: 1, MemoryGB: 1, GPU: &GPU{Count: 2, SKU: "V100"}}})
		}},
		{"two gpu skus", "MultipleGpuSkusNotSupported", "more than one GPU sku", func(g *Group) {
			g.Containers[0].Requests.GPU = &GPU{Count: 1, SKU: "V100"}
			g.Containers = append(g.Containers, Container{Name: "b", Image: "i", Requests: Resources{CPU: 1, MemoryGB: 1, GPU: &GPU{Count: 1, SKU: "K80"}}})
		}},
		{"confidential gpu", "GpuNotSupportedInConfidentialSku", "sku 'Confidential'", func(g *Group) {
			g.SKU, g.Containers[0].Requests.GPU = "Confidential", &GPU{Count: 1, SKU: "V100"}
		}},
		{"container port", "InvalidPort", "The port '70000'", func(g *Group) { g.Containers[0].Ports[0].Port = 70000 }},
		{"mount of unknown volume", "InvalidVolumeMount", "The volume mount 'nope' of container 'app'", func(g *Group) { g.Containers[0].VolumeMounts[0].Name = "nope" }},
		{"init mount of unknown volume", "InvalidVolumeMount", "of container 'init'", func(g *Group) { g.InitContainers[0].VolumeMounts[0].Name = "nope" }},
		{"mount path colon", "InvalidVolumeMountPath", "cannot be empty or contain ':'", func(g *Group) { g.Containers[0].VolumeMounts[0].MountPath = "C:/x" }},
		{"mount path twice", "DuplicateVolumeMountPath", "The mount path '/work' is used by more than one", func(g *Group) {
			g.Containers[0].VolumeMounts = append(g.Containers[0].VolumeMounts, VolumeMount{Name: "secret1", MountPath: "/work"})
		}},
		{"probe with both", "InvalidContainerProbe", "exactly one of 'exec' and 'httpGet'", func(g *Group) { g.Containers[0].LivenessProbe.HTTPGet = &HTTPGet{Port: 80} }},
		{"probe with neither", "InvalidContainerProbe", "The readinessProbe of container 'app'", func(g *Group) { g.Containers[0].ReadinessProbe.HTTPGet = nil }},
		{"probe empty exec", "InvalidContainerProbe", "'exec.command' must not be empty", func(g *Group) { g.Containers[0].LivenessProbe.Exec = []string{} }},
		{"probe port", "InvalidContainerProbe", "the port '0'", func(g *Group) { g.Containers[0].ReadinessProbe.HTTPGet.Port = 0 }},
		{"probe period", "InvalidContainerProbe", "'periodSeconds' must be at least 1", func(g *Group) { g.Containers[0].LivenessProbe.PeriodSeconds = ptr(0) }},
		{"probe delay", "InvalidContainerProbe", "'initialDelaySeconds' must be at least 0", func(g *Group) { g.Containers[0].LivenessProbe.InitialDelaySeconds = ptr(-1) }},
		{"privileged on standard", "PrivilegedContainerNotSupported", "Privileged containers are not supported for container 'app' in container group 'web' with sku 'Standard'.", func(g *Group) {
			g.Containers[0].SecurityContext.Privileged = ptr(true)
		}},
		{"capability", "InvalidSecurityContextCapability", "The capability 'CAP_FLY'", func(g *Group) { g.Containers[0].SecurityContext.CapabilitiesDrop = []string{"CAP_FLY"} }},
		{"run as negative", "InvalidSecurityContext", "'runAsUser' and 'runAsGroup' must not be negative", func(g *Group) { g.Containers[0].SecurityContext.RunAsGroup = ptr(int64(-1)) }},
		{"seccomp", "InvalidSecurityContext", "base64 encoded JSON seccomp profile", func(g *Group) { g.Containers[0].SecurityContext.SeccompProfile = "not base64!" }},
		{"init privileged", "PrivilegedContainerNotSupported", "container 'init'", func(g *Group) { g.InitContainers[0].SecurityContext = &SecurityContext{Privileged: ptr(true)} }},
		{"ip type", "InvalidIpAddressType", "The IP address type 'Internal'", func(g *Group) { g.IPAddress.Type = "Internal" }},
		{"ip without ports", "MissingIpAddressPorts", "The ports in the 'ipAddress' of container group 'web' cannot be empty.", func(g *Group) { g.IPAddress.Ports = nil }},
		{"public in a subnet", "InvalidIpAddressTypeForNetworkProfile", "IP Address type can't be public when network profile is set.", func(g *Group) {
			g.SubnetIDs = []SubnetID{{ID: "/s"}}
		}},
		{"public with a network profile", "InvalidIpAddressTypeForNetworkProfile", "can't be public", func(g *Group) { g.NetworkProfileID = "/np" }},
		{"six ports", "TooManyIpAddressPorts", "exceeds the limit of 5", func(g *Group) {
			for p := 81; p <= 85; p++ {
				g.Containers[0].Ports = append(g.Containers[0].Ports, Port{Port: p})
				g.IPAddress.Ports = append(g.IPAddress.Ports, Port{Port: p})
			}
		}},
		{"duplicate ip port", "DuplicateIpAddressPorts", "The port '80' (TCP) appears more than once", func(g *Group) {
			g.IPAddress.Ports = append(g.IPAddress.Ports, Port{Port: 80})
		}},
		{"ip port not exposed", "InvalidContainerGroupIpAddressPort", "must be exposed by at least one container. Port '81' is not.", func(g *Group) { g.IPAddress.Ports[0].Port = 81 }},
		{"ip port other protocol", "InvalidContainerGroupIpAddressPort", "Port '80' is not.", func(g *Group) { g.IPAddress.Ports[0].Protocol = "UDP" }},
		{"ip port range", "InvalidPort", "The port '0'", func(g *Group) { g.IPAddress.Ports[0].Port = 0 }},
		{"dns label", "InvalidDnsNameLabel", "The DNS name label 'web' is invalid. It can contain only lowercase letters, numbers and hyphens. The first character must be a letter. The last character must be a letter or number. The value must be between 5 and 63 characters long.", func(g *Group) {
			g.IPAddress.DNSNameLabel = "web"
		}},
		{"empty subnet id", "InvalidSubnetId", "must not be empty", func(g *Group) { g.IPAddress.Type, g.SubnetIDs = "Private", []SubnetID{{ID: ""}} }},
		{"21 volumes", "TooManyVolumesInContainerGroup", "exceeds the limit of 20", func(g *Group) {
			for i := 0; i < 17; i++ {
				g.Volumes = append(g.Volumes, Volume{Name: "vol" + string(rune('a'+i)) + "x", EmptyDir: true})
			}
		}},
		{"volume name", "InvalidVolumeName", "The volume name 'data'", func(g *Group) { g.Volumes[0].Name = "data"; g.Containers[0].VolumeMounts[0].Name = "data" }},
		{"duplicate volume", "DuplicateVolumeName", "Duplicate volume name 'work1'", func(g *Group) { g.Volumes = append(g.Volumes, g.Volumes[0]) }},
		{"volume of no kind", "InvalidVolume", "Exactly one of 'azureFile', 'emptyDir', 'gitRepo', 'secret' must be specified.", func(g *Group) { g.Volumes[0].EmptyDir = false }},
		{"volume of two kinds", "InvalidVolume", "The volume 'work1'", func(g *Group) { g.Volumes[0].GitRepo = &GitRepo{Repository: "r"} }},
		{"empty secret volume", "InvalidSecretVolume", "must have at least one secret", func(g *Group) { g.Volumes[1].Secret = map[string]string{} }},
		{"secret not base64", "InvalidSecretVolume", "is not valid base64", func(g *Group) { g.Volumes[1].Secret["token"] = "not base64!" }},
		{"secret file name", "InvalidSecretVolume", "is not a valid file name", func(g *Group) { g.Volumes[1].Secret["../x"] = "eA==" }},
		{"azure file share", "InvalidAzureFileVolume", "must have a share name", func(g *Group) { g.Volumes[2].AzureFile.ShareName = "" }},
		{"git repository", "InvalidGitRepoVolume", "must have a repository", func(g *Group) { g.Volumes[3].GitRepo.Repository = "" }},
		{"git directory", "InvalidGitRepoVolume", "must not contain '..'", func(g *Group) { g.Volumes[3].GitRepo.Directory = "../up" }},
		{"priority", "PriorityNotSpecified", "The 'Priority' must be one of 'Regular,Spot' for container group 'web'.", func(g *Group) { g.Priority = "Low" }},
		{"spot with public ip", "SpotPriorityContainerGroupNotSupportedForInboundConnectivity", "Spot Priority is not supported for container groups with inbound connectivity.", func(g *Group) {
			g.Priority = "Spot"
		}},
		{"spot in subnet", "SpotPriorityContainerGroupNotSupportedForInboundConnectivity", "inbound connectivity", func(g *Group) {
			g.Priority, g.IPAddress, g.SubnetIDs = "Spot", nil, []SubnetID{{ID: "/s"}}
		}},
		{"spot dedicated", "SpotPriorityContainerGroupNotSupportedInSku", "Spot Priority Container Group is not supported in 'Dedicated' Sku.", func(g *Group) {
			g.Priority, g.IPAddress, g.SKU = "Spot", nil, "Dedicated"
		}},
		{"spot gpu", "SpotPriorityContainerGroupWithGPUResourcesNotSupported", "Spot Priority Container Groups that include containers requesting GPU resources are not supported.", func(g *Group) {
			g.Priority, g.IPAddress, g.Containers[0].Requests.GPU = "Spot", nil, &GPU{Count: 1, SKU: "K80"}
		}},
		{"dns config empty", "InvalidDnsConfiguration", "'nameServers'", func(g *Group) { g.DNSConfig.NameServers = nil }},
		{"dns config server", "InvalidDnsConfiguration", "The name server 'dns.example'", func(g *Group) { g.DNSConfig.NameServers = []string{"dns.example"} }},
		{"log analytics key", "InvalidLogAnalytics", "'workspaceKey'", func(g *Group) { g.Diagnostics.LogAnalytics.WorkspaceKey = "" }},
		{"encryption", "InvalidEncryptionProperties", "'vaultBaseUrl'", func(g *Group) { g.EncryptionProperties.VaultBaseURL = "" }},
		{"extension", "InvalidExtension", "an extension type and a version", func(g *Group) { g.Extensions[0].Version = "" }},
		{"duplicate extension", "DuplicateExtensionName", "Duplicate extension name 'x'", func(g *Group) { g.Extensions = append(g.Extensions, g.Extensions[0]) }},
		{"cce policy", "InvalidCcePolicy", "The CCE Policy is not valid Base64.", func(g *Group) { g.CCEPolicy = ptr("{not base64}") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := validGroup()
			tc.edit(g)
			err := Validate(g)
			e := apierr.As(err)
			if err == nil || e.Class != apierr.Invalid || e.Code != tc.code || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("got %v, want %s mentioning %q", err, tc.code, tc.msg)
			}
		})
	}
}
