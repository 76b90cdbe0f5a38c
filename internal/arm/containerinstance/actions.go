package containerinstance

import "github.com/berth-dev/berth/internal/arm"

// actionRoutes are the group's POST actions (restart, stop, start) and
// outboundNetworkDependenciesEndpoints.
func (a *API) actionRoutes() []arm.Route { return nil }
