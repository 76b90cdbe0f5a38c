package containerinstance

import (
	"net/http"

	"github.com/berth-dev/berth/internal/arm"
)

// actionRoutes are the group's POST actions (restart, stop, start) and
// outboundNetworkDependenciesEndpoints.
func (a *API) actionRoutes() []arm.Route {
	post := func(action string, h arm.HandlerFunc) arm.Ops { return arm.Ops{"POST": arm.Do(action, h)} }
	return []arm.Route{
		{Pattern: groupPath + "/restart", Versions: Versions, Methods: post(ns+"/containerGroups/restart/action", a.restart)},
		{Pattern: groupPath + "/stop", Versions: Versions, Methods: post(ns+"/containerGroups/stop/action", a.stop)},
		{Pattern: groupPath + "/start", Versions: Versions, Methods: post(ns+"/containerGroups/start/action", a.start)},
		{Pattern: groupPath + "/outboundNetworkDependenciesEndpoints", Versions: Versions,
			Methods: arm.Ops{"GET": arm.Do(ns+"/containerGroups/outboundNetworkDependenciesEndpoints/read", a.outboundEndpoints)}},
	}
}

// restart answers 204 (the only code the SDKs accept) with the operation to
// poll.
func (a *API) restart(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	op, err := a.Service.RestartGroup(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	if op != nil {
		g, err := a.Service.Get(r.Context(), sub, rg, name)
		if err != nil {
			return err
		}
		a.setAsyncOperation(w, r, g, op)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// stop is synchronous: 204 once nothing of the group runs.
func (a *API) stop(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	if err := a.Service.StopGroup(r.Context(), sub, rg, name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// start answers 202 with the operation to poll, or 204 when the group runs
// already.
func (a *API) start(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	op, err := a.Service.StartGroup(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	if op == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	g, err := a.Service.Get(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	a.setAsyncOperation(w, r, g, op)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// outboundEndpoints lists the endpoints a group needs to reach outside its
// network: none for berth's groups (registries are reached through the
// in-namespace forwards).
func (a *API) outboundEndpoints(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	if _, err := a.Service.View(r.Context(), sub, rg, name); err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, []string{})
}
