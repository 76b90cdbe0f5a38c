package containerinstance

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/berth-dev/berth/internal/apierr"
)

// Properties of the published schema that berth does not implement yet. A
// request that sets one gets a clear 400 instead of a group that silently
// lacks it. (Empty arrays/objects and null are accepted: clients send them
// by default.)
var (
	unsupportedGroup     = []string{"volumes", "initContainers", "subnetIds", "networkProfile", "dnsConfig", "diagnostics", "encryptionProperties", "extensions", "confidentialComputeProperties", "containerGroupProfile", "standbyPoolProfile", "secretReferences", "identityAcls"}
	unsupportedContainer = []string{"volumeMounts", "livenessProbe", "readinessProbe", "securityContext", "configMap"}
	unsupportedRequests  = []string{"gpu"}
)

func notSupported(path string) error {
	return apierr.New(apierr.Invalid, "FeatureNotSupported",
		"The property '%s' is not supported by berth yet. Remove it, or deploy this container group to Azure.", path).WithTarget(path)
}

// set reports whether a JSON value is present and not null or empty.
func set(v json.RawMessage) bool {
	t := bytes.TrimSpace(v)
	switch string(t) {
	case "", "null", "[]", "{}", `""`:
		return false
	}
	return true
}

type rawObject map[string]json.RawMessage

func firstSet(obj rawObject, keys []string, prefix string) error {
	for _, k := range keys {
		if set(obj[k]) {
			return notSupported(prefix + k)
		}
	}
	return nil
}

// checkUnsupported looks through a PUT body for properties berth does not
// implement. Malformed JSON is left to the main decoder to report.
func checkUnsupported(body []byte) error {
	var top rawObject
	if json.Unmarshal(body, &top) != nil {
		return nil
	}
	if id := top["identity"]; set(id) {
		var ident struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(id, &ident) != nil || (ident.Type != "" && ident.Type != "None") {
			return notSupported("identity")
		}
	}
	var props rawObject
	if json.Unmarshal(top["properties"], &props) != nil {
		return nil
	}
	if err := firstSet(props, unsupportedGroup, "properties."); err != nil {
		return err
	}
	var containers []struct {
		Properties rawObject `json:"properties"`
	}
	if json.Unmarshal(props["containers"], &containers) != nil {
		return nil
	}
	for i, c := range containers {
		prefix := fmt.Sprintf("properties.containers[%d].properties.", i)
		if err := firstSet(c.Properties, unsupportedContainer, prefix); err != nil {
			return err
		}
		var res struct {
			Requests rawObject `json:"requests"`
			Limits   rawObject `json:"limits"`
		}
		if json.Unmarshal(c.Properties["resources"], &res) == nil {
			if err := firstSet(res.Requests, unsupportedRequests, prefix+"resources.requests."); err != nil {
				return err
			}
			if err := firstSet(res.Limits, unsupportedRequests, prefix+"resources.limits."); err != nil {
				return err
			}
		}
	}
	return nil
}
