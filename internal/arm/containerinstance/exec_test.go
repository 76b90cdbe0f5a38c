package containerinstance

import (
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	sdk "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"

	"github.com/berth-dev/berth/internal/aci"
)

// TestExecTicketCapOnTheWire: once a group has the most exec tickets not
// yet opened, exec answers 429 TooManyRequests in ARM's envelope; exec into
// an init container answers 409 ContainerNotRunning.
func TestExecTicketCapOnTheWire(t *testing.T) {
	e := newSDKEnv(t, 0)
	g := sdkGroup()
	g.Properties.InitContainers = []*sdk.InitContainerDefinition{{Name: to.Ptr("setup"),
		Properties: &sdk.InitContainerPropertiesDefinition{Image: to.Ptr("reg/app:v1"), Command: to.SliceOfPtrs("/app", "exit", "0")}}}
	e.create(t, "web", g)
	e.waitState(t, "web", "Running")
	url := "/subscriptions/" + testSub + "/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/web/containers/web/exec"
	body := map[string]any{"command": "true", "terminalSize": map[string]int{"rows": 24, "cols": 80}}
	initURL := "/subscriptions/" + testSub + "/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/web/containers/setup/exec"
	if st, m, raw := e.call(t, "POST", initURL, "2023-05-01", body); st != http.StatusConflict || dig(m, "error", "code") != "ContainerNotRunning" {
		t.Fatalf("exec into an init container: %d %s, want 409 ContainerNotRunning", st, raw)
	}
	for i := range aci.MaxPendingSessionsPerGroup {
		if st, _, raw := e.call(t, "POST", url, "2023-05-01", body); st != http.StatusOK {
			t.Fatalf("exec %d: %d %s", i, st, raw)
		}
	}
	st, m, raw := e.call(t, "POST", url, "2023-05-01", body)
	if st != http.StatusTooManyRequests || dig(m, "error", "code") != "TooManyRequests" {
		t.Fatalf("exec over the cap: %d %s, want 429 TooManyRequests", st, raw)
	}
}
