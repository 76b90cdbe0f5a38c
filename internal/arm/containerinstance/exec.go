package containerinstance

import (
	"net/http"

	"github.com/berth-dev/berth/internal/arm"
	"github.com/berth-dev/berth/internal/terminal"
)

// execRoutes are exec and attach (POST …/containers/{c}/exec, /attach):
// each answers a webSocketUri on berth's own listener (package terminal)
// and a one-shot password.
func (a *API) execRoutes() []arm.Route {
	return []arm.Route{
		{Pattern: groupPath + "/containers/{containerName}/exec", Versions: Versions,
			Methods: arm.Ops{"POST": arm.Do(ns+"/containerGroups/containers/exec/action", a.exec)}},
		{Pattern: groupPath + "/containers/{containerName}/attach", Versions: Versions,
			Methods: arm.Ops{"POST": arm.Do(ns+"/containerGroups/containers/attach/action", a.attach)}},
	}
}

// execRequest is ContainerExecRequest.
type execRequest struct {
	Command      string `json:"command"`
	TerminalSize *struct {
		Rows int `json:"rows"`
		Cols int `json:"cols"`
	} `json:"terminalSize"`
}

// sessionResponse is ContainerExecResponse and ContainerAttachResponse.
type sessionResponse struct {
	WebSocketURI string `json:"webSocketUri"`
	Password     string `json:"password"`
}

func (a *API) exec(w http.ResponseWriter, r *arm.Request) error {
	var in execRequest
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	rows, cols := 0, 0
	if in.TerminalSize != nil {
		rows, cols = in.TerminalSize.Rows, in.TerminalSize.Cols
	}
	sub, rg, name := ids(r)
	t, err := a.Service.Exec(r.Context(), sub, rg, name, r.Param("containerName"), in.Command, rows, cols)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return arm.WriteJSON(w, http.StatusOK, sessionResponse{WebSocketURI: terminal.URL(r.Base, t.ID, t.Rows, t.Cols), Password: t.Password})
}

func (a *API) attach(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	t, err := a.Service.Attach(r.Context(), sub, rg, name, r.Param("containerName"))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return arm.WriteJSON(w, http.StatusOK, sessionResponse{WebSocketURI: terminal.URL(r.Base, t.ID, 0, 0), Password: t.Password})
}
