package containerinstance

import (
	"encoding/json"
	"fmt"

	"github.com/berth-dev/berth/internal/aci"
	"github.com/berth-dev/berth/internal/apierr"
)

// berth refuses, with FeatureNotSupported, only what would otherwise
// silently misbehave: references into Key Vault, and standby pools
// (berth has none). Everything else of the schema is accepted and stored.
// Empty arrays/objects and null are accepted: clients send them by default.
// Properties a version's schema lacks never get here (gate drops them).

func notSupported(path string) error {
	return apierr.New(apierr.Invalid, "FeatureNotSupported",
		"The property '%s' is not supported by berth yet. Remove it, or deploy this container group to Azure.", path).WithTarget(path)
}

// checkUnsupported looks through a decoded (gated) PUT body and the group
// made of it for what berth refuses.
func checkUnsupported(in *putGroup, g *aci.Group) error {
	p := in.Properties
	var refs []json.RawMessage
	if jsonValue(p.SecretReferences) != nil && json.Unmarshal(p.SecretReferences, &refs) == nil && len(refs) > 0 {
		return notSupported("properties.secretReferences")
	}
	if g.StandbyPoolProfile != nil {
		return apierr.New(apierr.Invalid, "FeatureNotSupported",
			"The property 'properties.standbyPoolProfile' is not supported: berth has no standby pools. Remove it to create the container group directly.").
			WithTarget("properties.standbyPoolProfile")
	}
	for i, rc := range g.RegistryCredentials {
		path := fmt.Sprintf("properties.imageRegistryCredentials[%d].", i)
		switch {
		case rc.PasswordReference != "":
			return notSupported(path + "passwordReference")
		}
	}
	envs := func(env []aci.EnvVar, path string) error {
		for j, e := range env {
			if e.SecureValueReference != "" {
				return notSupported(fmt.Sprintf("%s.environmentVariables[%d].secureValueReference", path, j))
			}
		}
		return nil
	}
	for i, c := range g.Containers {
		if err := envs(c.Env, fmt.Sprintf("properties.containers[%d].properties", i)); err != nil {
			return err
		}
	}
	for i, c := range g.InitContainers {
		if err := envs(c.Env, fmt.Sprintf("properties.initContainers[%d].properties", i)); err != nil {
			return err
		}
	}
	for i, v := range g.Volumes {
		path := fmt.Sprintf("properties.volumes[%d].", i)
		if len(v.SecretReference) > 0 {
			return notSupported(path + "secretReference")
		}
		if v.AzureFile != nil && v.AzureFile.StorageAccountKeyReference != "" {
			return notSupported(path + "azureFile.storageAccountKeyReference")
		}
	}
	return nil
}
