package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
)

// errorCode is one entry of the table of errors the registry sends: an OCI
// (or ACR) code, the HTTP status it travels with, and its default message.
// Two entries may share a code when the status differs.
type errorCode struct {
	Code    string
	Status  int
	Message string
}

// The error table. Handlers return apiErrors built from these entries;
// writeError is the only place that turns them into a response.
var (
	errBlobUnknown         = errorCode{"BLOB_UNKNOWN", http.StatusNotFound, "blob unknown to registry"}
	errBlobUploadInvalid   = errorCode{"BLOB_UPLOAD_INVALID", http.StatusBadRequest, "blob upload invalid"}
	errBlobUploadBusy      = errorCode{"BLOB_UPLOAD_INVALID", http.StatusConflict, "blob upload is in use by another request"}
	errBlobUploadUnknown   = errorCode{"BLOB_UPLOAD_UNKNOWN", http.StatusNotFound, "blob upload unknown to registry"}
	errDigestInvalid       = errorCode{"DIGEST_INVALID", http.StatusBadRequest, "provided digest did not match uploaded content"}
	errManifestBlobUnknown = errorCode{"MANIFEST_BLOB_UNKNOWN", http.StatusBadRequest, "manifest references a manifest or blob unknown to registry"}
	errManifestInvalid     = errorCode{"MANIFEST_INVALID", http.StatusBadRequest, "manifest invalid"}
	errManifestTooLarge    = errorCode{"MANIFEST_INVALID", http.StatusRequestEntityTooLarge, "manifest too large"}
	errManifestUnknown     = errorCode{"MANIFEST_UNKNOWN", http.StatusNotFound, "manifest unknown to registry"}
	errNameInvalid         = errorCode{"NAME_INVALID", http.StatusBadRequest, "invalid repository name"}
	errNameUnknown         = errorCode{"NAME_UNKNOWN", http.StatusNotFound, "repository name not known to registry"}
	errTagInvalid          = errorCode{"TAG_INVALID", http.StatusBadRequest, "invalid tag or reference"}
	errRangeInvalid        = errorCode{"RANGE_INVALID", http.StatusRequestedRangeNotSatisfiable, "invalid content range"}
	errSizeInvalid         = errorCode{"SIZE_INVALID", http.StatusBadRequest, "provided length did not match content length"}
	errPaginationInvalid   = errorCode{"PAGINATION_NUMBER_INVALID", http.StatusBadRequest, "invalid number of results requested"}
	errUnauthorized        = errorCode{"UNAUTHORIZED", http.StatusUnauthorized, "authentication required, visit https://aka.ms/acr/authorization for more information."}
	errUnsupported         = errorCode{"UNSUPPORTED", http.StatusBadRequest, "the operation is unsupported"}
	errMethodNotAllowed    = errorCode{"UNSUPPORTED", http.StatusMethodNotAllowed, "the method is not supported on this resource"}
	errNotFound            = errorCode{"NOT_FOUND", http.StatusNotFound, "no such endpoint"}
	errTagUnknown          = errorCode{"TAG_UNKNOWN", http.StatusNotFound, "the specified tag does not exist"}
	errDenied              = errorCode{"DENIED", http.StatusForbidden, "The operation is disallowed on this registry, repository or image."}
	errDeleteDisabled      = errorCode{"UNSUPPORTED", http.StatusMethodNotAllowed, "The operation is disallowed on this registry, repository or image."}
	errUnknown             = errorCode{"UNKNOWN", http.StatusInternalServerError, "unknown error"}
)

// apiError is an error a client sees. Its message and detail are user-safe;
// err, the internal cause, is only logged.
type apiError struct {
	code      errorCode
	message   string // overrides code.Message when set
	detail    any
	challenge string // WWW-Authenticate value for 401s
	err       error
}

func (e *apiError) Error() string {
	msg := e.code.Code + ": " + e.msg()
	if e.err != nil {
		msg += ": " + e.err.Error()
	}
	return msg
}

func (e *apiError) Unwrap() error { return e.err }

func (e *apiError) msg() string {
	if e.message != "" {
		return e.message
	}
	return e.code.Message
}

// newError returns an apiError with the code's default message.
func newError(c errorCode) *apiError { return &apiError{code: c} }

// errorf returns an apiError with a formatted, user-safe message.
func errorf(c errorCode, format string, args ...any) *apiError {
	return &apiError{code: c, message: fmt.Sprintf(format, args...)}
}

// withDetail sets the detail member and returns e.
func (e *apiError) withDetail(d any) *apiError { e.detail = d; return e }

// because records the internal cause and returns e.
func (e *apiError) because(err error) *apiError { e.err = err; return e }

// Wire format of an error response.
type errorsBody struct {
	Errors []errorBody `json:"errors"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// writeError is the single writer of error responses. The OCI API, ACR's
// /acr/v1 API and ACR's token endpoints all answer errors in the same
// {"errors":[{code,message,detail}]} shape (acr.md §1, DP AcrErrors), so one
// writer serves them. Errors that are not apiErrors are internal: the client
// gets UNKNOWN and the log gets the cause.
func (r *Registry) writeError(w http.ResponseWriter, req *http.Request, err error) {
	var e *apiError
	if !errors.As(err, &e) {
		e = newError(errUnknown).because(err)
	}
	reqID := w.Header().Get(headerRequestID)
	level := slog.LevelDebug
	if e.code.Status >= 500 {
		level = slog.LevelError
	}
	r.log.Log(req.Context(), level, "registry request failed",
		"request_id", reqID, "method", req.Method, "path", req.URL.Path,
		"status", e.code.Status, "code", e.code.Code, "error", err)
	h := w.Header()
	if e.challenge != "" {
		h.Set("WWW-Authenticate", e.challenge)
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Del("Content-Length")
	h.Del("Docker-Content-Digest")
	w.WriteHeader(e.code.Status)
	if req.Method == http.MethodHead {
		return
	}
	body := errorsBody{Errors: []errorBody{{Code: e.code.Code, Message: e.msg(), Detail: e.detail}}}
	_ = json.NewEncoder(w).Encode(body)
}
