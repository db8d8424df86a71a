package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/portcullis-dev/portcullis/upstream"
)

// Error codes of the distribution spec, as sent in the "code" field of an
// error body. https://github.com/opencontainers/distribution-spec/blob/main/spec.md#error-codes
const (
	codeBlobUnknown      = "BLOB_UNKNOWN"
	codeDigestInvalid    = "DIGEST_INVALID"
	codeManifestUnknown  = "MANIFEST_UNKNOWN"
	codeNameInvalid      = "NAME_INVALID"
	codeNameUnknown      = "NAME_UNKNOWN"
	codeTagInvalid       = "TAG_INVALID"
	codeDenied           = "DENIED"
	codeUnsupported      = "UNSUPPORTED"
	codeTooManyRequests  = "TOOMANYREQUESTS"
	codeUnavailable      = "UNAVAILABLE"
	codeRangeUnsatisfied = "RANGE_NOT_SATISFIABLE"
	// codeUpstreamError is not in the spec: it is the code of every 502, an
	// upstream that answered but unusably (a 5xx, bytes that do not match
	// their digest, a malformed answer, a refusal of the proxy's own
	// credentials), so that it reads neither as a policy refusal (DENIED)
	// nor as no answer at all (UNAVAILABLE).
	codeUpstreamError = "UPSTREAM_ERROR"
)

// statusOf is the one table of wire answers: each code is sent with one
// status, whatever produced it.
var statusOf = map[string]int{
	codeBlobUnknown:      http.StatusNotFound,
	codeManifestUnknown:  http.StatusNotFound,
	codeNameUnknown:      http.StatusNotFound, // also every /v2 endpoint this mirror does not know
	codeDigestInvalid:    http.StatusBadRequest,
	codeNameInvalid:      http.StatusBadRequest,
	codeTagInvalid:       http.StatusBadRequest,
	codeDenied:           http.StatusForbidden, // only a policy refusal
	codeUnsupported:      http.StatusMethodNotAllowed,
	codeRangeUnsatisfied: http.StatusRequestedRangeNotSatisfiable,
	codeTooManyRequests:  http.StatusTooManyRequests, // passed on with Retry-After
	codeUpstreamError:    http.StatusBadGateway,
	codeUnavailable:      http.StatusServiceUnavailable, // no answer, or no decision
}

// upstreamCode is the code an upstream failure of each kind is sent as.
// NotFound takes the upstream's own *_UNKNOWN code, else the route's.
var upstreamCode = map[upstream.Kind]string{
	upstream.Unauthorized:        codeUpstreamError,
	upstream.RateLimited:         codeTooManyRequests,
	upstream.Unavailable:         codeUnavailable,
	upstream.Timeout:             codeUnavailable,
	upstream.BadResponse:         codeUpstreamError,
	upstream.DigestMismatch:      codeUpstreamError,
	upstream.RangeNotSatisfiable: codeRangeUnsatisfied,
}

// notFoundCode is a route's code for "not there".
var notFoundCode = map[string]string{
	routeManifest:  codeManifestUnknown,
	routeReferrers: codeManifestUnknown,
	routeBlob:      codeBlobUnknown,
	routeTags:      codeNameUnknown,
}

// DeniedError is a Refusal: 403 with an OCI error body whose code is
// DENIED, whose message is Message, and whose detail is Detail (any
// JSON-marshalable value, may be nil); 404 MANIFEST_UNKNOWN if NotFound.
type DeniedError struct {
	Message  string
	Detail   any
	NotFound bool
}

func (e *DeniedError) Error() string { return e.Message }

// Refused implements Refusal.
func (e *DeniedError) Refused() (detail any, notFound bool) { return e.Detail, e.NotFound }

// regError is an answer on the wire; only writeError sends it.
type regError struct {
	Status  int
	Code    string
	Message string
	Detail  any
	// Header holds extra response headers (Retry-After, Content-Range).
	Header http.Header
	// cause is the error the regError was made from, when that error's
	// text is not for clients (it may hold what an upstream or a token
	// realm answered). It is never written to a client; it is there for
	// the log.
	cause error
}

func (e *regError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

// newError is an answer with code, its status from the table.
func newError(code, format string, args ...any) *regError {
	return &regError{Status: statusOf[code], Code: code, Message: fmt.Sprintf(format, args...)}
}

// asRegError maps any error to the wire, for a request on route: a
// *regError as is; a Gate's Refusal to 403 DENIED (the only source of
// DENIED: a policy refusal) or 404; an *upstream.Error by its kind;
// anything else (no decision could be made) to 503 UNAVAILABLE.
func asRegError(err error, route string) *regError {
	var re *regError
	if errors.As(err, &re) {
		return re
	}
	var refusal Refusal
	if errors.As(err, &refusal) {
		detail, notFound := refusal.Refused()
		if notFound {
			return newError(codeManifestUnknown, "%s", refusal.Error())
		}
		e := newError(codeDenied, "%s", refusal.Error())
		e.Detail = detail
		return e
	}
	var ue *upstream.Error
	if errors.As(err, &ue) {
		return fromUpstream(ue, route)
	}
	return newError(codeUnavailable, "%v", err)
}

// fromUpstream is the wire answer to an upstream failure.
func fromUpstream(ue *upstream.Error, route string) *regError {
	code := upstreamCode[ue.Kind]
	if ue.Kind == upstream.NotFound {
		code = ue.Code
		if code == "" || statusOf[code] != http.StatusNotFound {
			code = notFoundCode[route]
		}
		if code == "" {
			code = codeNameUnknown
		}
	}
	if code == "" {
		code = codeUpstreamError
	}
	e := newError(code, "%s", ue.Message)
	e.cause = ue.Err
	switch {
	case ue.RetryAfter != "":
		e.Header = http.Header{"Retry-After": {ue.RetryAfter}}
	case ue.ContentRange != "":
		e.Header = http.Header{"Content-Range": {ue.ContentRange}}
	}
	return e
}

type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// writeError writes an OCI error body; a HEAD response carries the status
// and headers only.
func writeError(w http.ResponseWriter, r *http.Request, e *regError) {
	h := w.Header()
	for k, vs := range e.Header {
		h[k] = vs
	}
	h.Del("Docker-Content-Digest")
	h.Del("Content-Length")
	if r.Method == http.MethodHead {
		w.WriteHeader(e.Status)
		return
	}
	body, err := json.Marshal(struct {
		Errors []wireError `json:"errors"`
	}{[]wireError{{Code: e.Code, Message: e.Message, Detail: e.Detail}}})
	if err != nil { // a Detail that does not marshal: drop it, keep the refusal
		body, _ = json.Marshal(struct {
			Errors []wireError `json:"errors"`
		}{[]wireError{{Code: e.Code, Message: e.Message}}})
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}
