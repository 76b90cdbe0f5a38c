package containerinstance

import "github.com/berth-dev/berth/internal/arm"

// locationRoutes are the location-scoped reads (usages, cachedImages,
// capabilities), the operations list and the subnet
// service-association-link delete.
func (a *API) locationRoutes() []arm.Route { return nil }
