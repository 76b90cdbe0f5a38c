package containerinstance

import "github.com/berth-dev/berth/internal/arm"

// execRoutes are exec and attach (POST …/containers/{c}/exec, /attach).
func (a *API) execRoutes() []arm.Route { return nil }
