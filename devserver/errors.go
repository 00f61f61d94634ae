package devserver

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors of the Go API; every *Error matches the one of its status
// with errors.Is.
var (
	ErrInvalid      = errors.New("devserver: invalid request")
	ErrUnauthorized = errors.New("devserver: unauthorized")
	ErrPlanLimit    = errors.New("devserver: plan limit reached")
	ErrForbidden    = errors.New("devserver: forbidden")
	ErrNotFound     = errors.New("devserver: not found")
	ErrConflict     = errors.New("devserver: conflict")
)

// Error is an API error: the HTTP status, the slug of error.code and the
// message. Handlers answer it with the contract's error envelope.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("devserver: %d %s: %s", e.Status, e.Code, e.Message)
}

// Is matches the sentinel of the error's status.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrInvalid:
		return e.Status == http.StatusBadRequest || e.Status == http.StatusUnprocessableEntity
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrPlanLimit:
		return e.Status == http.StatusPaymentRequired
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusConflict
	}
	return false
}

func apiErr(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *Error {
	return apiErr(http.StatusBadRequest, "bad_request", format, args...)
}

func unprocessable(format string, args ...any) *Error {
	return apiErr(http.StatusUnprocessableEntity, "validation_error", format, args...)
}

func notFound(format string, args ...any) *Error {
	return apiErr(http.StatusNotFound, "not_found", format, args...)
}

func conflict(format string, args ...any) *Error {
	return apiErr(http.StatusConflict, "conflict", format, args...)
}

func forbidden(format string, args ...any) *Error {
	return apiErr(http.StatusForbidden, "forbidden", format, args...)
}

// errorBody is the contract's error envelope: both "error" and "detail".
type errorBody struct {
	Error struct {
		Code    string         `json:"code"`
		Message string         `json:"message"`
		Details map[string]any `json:"details"`
	} `json:"error"`
	Detail string `json:"detail"`
}

func newErrorBody(e *Error) errorBody {
	var b errorBody
	b.Error.Code = e.Code
	b.Error.Message = e.Message
	b.Error.Details = map[string]any{}
	b.Detail = e.Message
	return b
}

// asAPIError turns any error into an *Error, hiding internal ones behind 500.
func asAPIError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return apiErr(http.StatusInternalServerError, "internal_error", "internal server error"), false
}
