package arm

import (
	"errors"
	"net/http"

	"github.com/berth-dev/berth/internal/apierr"
)

// statusOf is the one table from error class to HTTP status for ARM.
var statusOf = map[apierr.Class]int{
	apierr.Internal:        http.StatusInternalServerError,
	apierr.Invalid:         http.StatusBadRequest,
	apierr.NotFound:        http.StatusNotFound,
	apierr.Conflict:        http.StatusConflict,
	apierr.Unauthenticated: http.StatusUnauthorized,
	apierr.Forbidden:       http.StatusForbidden,
	apierr.Unavailable:     http.StatusServiceUnavailable,
	apierr.TooLarge:        http.StatusRequestEntityTooLarge,
	apierr.TooManyRequests: http.StatusTooManyRequests,
}

// wireError is ARM's error detail (CloudError.error).
type wireError struct {
	Code    string       `json:"code"`
	Message string       `json:"message"`
	Target  string       `json:"target,omitempty"`
	Details []*wireError `json:"details,omitempty"`
}

// WireError converts an error to ARM's error object (also used in async
// operation status documents).
func WireError(err error) *wireError {
	e := apierr.As(err)
	we := &wireError{Code: e.Code, Message: e.Message, Target: e.Target}
	for _, d := range e.Details {
		we.Details = append(we.Details, WireError(d))
	}
	return we
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := apierr.As(err)
	status := statusOf[e.Class]
	if errors.Is(err, errMethod) {
		status = http.StatusMethodNotAllowed
	}
	if e.Class == apierr.Internal && s.Log != nil {
		s.Log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	h := w.Header()
	h.Set("x-ms-error-code", e.Code)
	if e.Class == apierr.Unauthenticated {
		h.Set("WWW-Authenticate", `Bearer authorization_uri="`+baseURL(r)+`/", error="invalid_token", error_description="`+e.Message+`"`)
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	_ = WriteJSON(w, status, struct {
		Error *wireError `json:"error"`
	}{WireError(e)})
}
