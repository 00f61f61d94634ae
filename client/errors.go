package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Sentinel errors, matched with errors.Is against anything this package
// returns. An *APIError matches the sentinel of its status (see APIError.Is).
var (
	ErrNotFound        = errors.New("not found")
	ErrConflict        = errors.New("conflict")
	ErrForbidden       = errors.New("forbidden")
	ErrUnauthorized    = errors.New("unauthorized")
	ErrPaymentRequired = errors.New("payment required")
	ErrRateLimited     = errors.New("rate limited")
	ErrValidation      = errors.New("validation failed")
	ErrServer          = errors.New("server error")
	ErrNetwork         = errors.New("network error")
	ErrTimeout         = errors.New("timeout")
	ErrBudgetExceeded  = errors.New("hourly request budget exceeded")
	ErrURLExpired      = errors.New("signed URL expired")
)

// codeInvalidResponse is the Code of an APIError made for a 2xx answer whose
// body is not what the contract says (not JSON, wrong shape). It is ErrServer.
const codeInvalidResponse = "invalid_response"

// APIError is a non-2xx answer (or an unusable 2xx answer) of the API or of
// object storage. It never holds the API key or a signed URL's query string.
type APIError struct {
	Status    int    // HTTP status
	Code      string // error slug, e.g. "not_found"; may be empty
	Message   string // human-readable message from the body, or the status text
	RequestID string // X-Request-Id of the answer
	// Details is the "details" object of the error body, if any.
	Details map[string]any
	// FieldErrors maps a field ("name", "limit") to its validation message,
	// from FastAPI-style detail lists ({loc, msg}) or the details object.
	FieldErrors map[string]string
	Method      string
	Path        string        // request path and query; for storage, the URL without its query
	Attempts    int           // attempts made, retries included
	RetryAfter  time.Duration // the Retry-After header, when present
	Storage     bool          // the answer came from a signed storage URL, not the API
}

// Error renders status, code, message and request id; never the key.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("pictograph: ")
	if e.Method != "" {
		b.WriteString(e.Method + " ")
	}
	b.WriteString(e.Path)
	fmt.Fprintf(&b, ": %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if len(e.FieldErrors) > 0 {
		fields := make([]string, 0, len(e.FieldErrors))
		for k, v := range e.FieldErrors {
			fields = append(fields, k+": "+v)
		}
		slices.Sort(fields)
		b.WriteString(" (" + strings.Join(fields, "; ") + ")")
	}
	if e.RequestID != "" {
		b.WriteString(" [request id " + e.RequestID + "]")
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, ", retry after %s", e.RetryAfter)
	}
	return b.String()
}

// Is maps the status to a sentinel: 400/422 ErrValidation, 401
// ErrUnauthorized, 402 ErrPaymentRequired, 403 ErrForbidden (and
// ErrURLExpired when it came from storage), 404/410 ErrNotFound, 408
// ErrTimeout, 409 ErrConflict, 429 ErrRateLimited, 5xx ErrServer. The slugs
// of §6 match too, and a 400 whose message says the thing exists (a
// duplicate upload, §5, or export name, §10) is also ErrConflict.
func (e *APIError) Is(target error) bool {
	switch {
	case target == ErrURLExpired:
		return e.Storage && e.Status == http.StatusForbidden
	case target == ErrConflict && e.Status == http.StatusBadRequest:
		if saysDuplicate(e.Message) {
			return true
		}
	}
	return target == statusSentinel(e.Status) || (target != nil && target == codeSentinel[e.Code])
}

// saysDuplicate reports whether an error message says that what was to be
// created exists already ("already exists", "Export 'x' exists",
// "duplicate name"), and not that something does not exist.
func saysDuplicate(msg string) bool {
	m := strings.ToLower(msg)
	for _, s := range []string{"already exist", "already in use", "already taken", "duplicate", "must be unique"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	if !strings.Contains(m, "exists") {
		return false
	}
	for _, neg := range []string{"not exist", "n't exist", "no longer exist", "never exist"} {
		if strings.Contains(m, neg) {
			return false
		}
	}
	return true
}

func statusSentinel(status int) error {
	switch status {
	case 400, 422:
		return ErrValidation
	case 401:
		return ErrUnauthorized
	case 402:
		return ErrPaymentRequired
	case 403:
		return ErrForbidden
	case 404, 410:
		return ErrNotFound
	case 408:
		return ErrTimeout
	case 409:
		return ErrConflict
	case 429:
		return ErrRateLimited
	}
	if status >= 500 {
		return ErrServer
	}
	return nil
}

var codeSentinel = map[string]error{
	"not_found":            ErrNotFound,
	"conflict":             ErrConflict,
	"already_exists":       ErrConflict,
	"rate_limited":         ErrRateLimited,
	"insufficient_credits": ErrPaymentRequired,
	codeInvalidResponse:    ErrServer,
}

// parseErrorBody fills Code, Message, Details and FieldErrors of e from an
// error body: {"error": {code, message, details} | "text", "detail": "text" |
// [{loc, msg}] | {code, message}}. Either key may be absent; a body that is
// not JSON becomes the message, shortened.
func parseErrorBody(e *APIError, body []byte) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		e.Message = snippet(body)
		return
	}
	if v, ok := raw["error"]; ok {
		parseErrorValue(e, v)
	}
	if v, ok := raw["detail"]; ok {
		parseErrorValue(e, v)
	}
	if e.Message == "" {
		e.Message = jsonString(raw["message"])
	}
	if e.Code == "" {
		e.Code = jsonString(raw["code"])
	}
	if e.RequestID == "" {
		e.RequestID = jsonString(raw["request_id"])
	}
}

// parseErrorValue reads one of "error" or "detail": a string, an object or a
// list of validation items.
func parseErrorValue(e *APIError, v json.RawMessage) {
	var s string
	if json.Unmarshal(v, &s) == nil {
		if e.Message == "" {
			e.Message = s
		}
		return
	}
	var list []map[string]any
	if json.Unmarshal(v, &list) == nil {
		addFieldErrors(e, list)
		if e.Message == "" && len(list) > 0 {
			e.Message = "validation error"
		}
		return
	}
	var obj struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Details json.RawMessage `json:"details"`
	}
	if json.Unmarshal(v, &obj) != nil {
		return
	}
	if e.Code == "" {
		e.Code = obj.Code
	}
	if e.Message == "" {
		e.Message = obj.Message
	}
	var details map[string]any
	if json.Unmarshal(obj.Details, &details) == nil && details != nil {
		e.Details = details
		if items, ok := details["errors"].([]any); ok {
			addFieldErrors(e, toObjects(items))
		}
		if fields, ok := details["fields"].(map[string]any); ok {
			for k, msg := range fields {
				if s, ok := msg.(string); ok {
					setFieldError(e, k, s)
				}
			}
		}
	}
	var items []map[string]any
	if json.Unmarshal(obj.Details, &items) == nil {
		addFieldErrors(e, items)
	}
}

// addFieldErrors reads FastAPI validation items: {"loc": ["body", "name"],
// "msg": "…"} or {"field": "name", "message": "…"}.
func addFieldErrors(e *APIError, items []map[string]any) {
	for _, it := range items {
		msg, _ := it["msg"].(string)
		if msg == "" {
			msg, _ = it["message"].(string)
		}
		field, _ := it["field"].(string)
		if loc, ok := it["loc"].([]any); ok {
			field = locField(loc)
		}
		if field != "" || msg != "" {
			setFieldError(e, field, msg)
		}
	}
}

func setFieldError(e *APIError, field, msg string) {
	if e.FieldErrors == nil {
		e.FieldErrors = make(map[string]string)
	}
	if field == "" {
		field = "_"
	}
	e.FieldErrors[field] = msg
}

// locField joins a FastAPI loc, dropping its leading "body"/"query"/… part.
func locField(loc []any) string {
	parts := make([]string, 0, len(loc))
	for _, p := range loc {
		parts = append(parts, fmt.Sprint(p))
	}
	if len(parts) > 1 && slices.Contains([]string{"body", "query", "path", "header"}, parts[0]) {
		parts = parts[1:]
	}
	return strings.Join(parts, ".")
}

func toObjects(items []any) []map[string]any {
	out := make([]map[string]any, 0, len(items))
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func jsonString(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) != nil {
		return ""
	}
	return s
}

// snippet is a short single-line rendering of a non-JSON body.
func snippet(body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// parseStorageError reads the <Code> and <Message> of an S3- or GCS-style
// XML error. Nothing else of a storage body is kept: some (a failed
// signature check) echo the signature.
func parseStorageError(e *APIError, body []byte) {
	e.Code = xmlElement(body, "Code")
	e.Message = xmlElement(body, "Message")
}

func xmlElement(body []byte, name string) string {
	s := string(body)
	_, rest, ok := strings.Cut(s, "<"+name+">")
	if !ok {
		return ""
	}
	v, _, ok := strings.Cut(rest, "</"+name+">")
	if !ok {
		return ""
	}
	return snippet([]byte(v))
}
