// Package apierr is the error type berth's services return for anything a
// client should see: an Azure error code and a user-safe message, plus a
// class that each wire format maps to its HTTP status in one table (see
// arm.statusOf). Internal errors are wrapped separately so their text never
// reaches a client by accident.
package apierr

import (
	"errors"
	"fmt"
)

// Class is a kind of failure, independent of wire format.
type Class int

const (
	Internal        Class = iota // a bug or an unexpected failure below
	Invalid                      // the request is malformed or violates a rule
	NotFound                     // the addressed thing does not exist
	Conflict                     // the request conflicts with current state
	Unauthenticated              // no or bad credentials
	Forbidden                    // authenticated but not allowed
	Unavailable                  // temporarily unable; retry later
	TooLarge                     // request entity too large
	TooManyRequests              // a limit on outstanding requests is reached; retry later
)

// Error is a client-visible error.
type Error struct {
	Class   Class
	Code    string // Azure error code, e.g. "ResourceGroupNotFound"
	Message string // user-safe text
	Target  string // optional: the offending property
	Details []*Error
	// Err is the internal cause, logged but never sent.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error of class c with an Azure code and a formatted message.
func New(c Class, code, format string, args ...any) *Error {
	return &Error{Class: c, Code: code, Message: fmt.Sprintf(format, args...)}
}

// WithTarget sets Target and returns e.
func (e *Error) WithTarget(t string) *Error { e.Target = t; return e }

// As extracts an *Error from err. A non-apierr error becomes an Internal
// error with a generic message (the cause is kept in Err for logs).
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Class: Internal, Code: "InternalServerError", Message: "An internal error occurred. Please retry the request.", Err: err}
}

// Is reports whether err is an *Error of class c.
func Is(err error, c Class) bool {
	var e *Error
	return errors.As(err, &e) && e.Class == c
}
