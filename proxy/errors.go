package proxy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Error codes of the distribution spec, as sent in the "code" field of an
// error body. https://github.com/opencontainers/distribution-spec/blob/main/spec.md#error-codes
const (
	codeBlobUnknown      = "BLOB_UNKNOWN"
	codeDigestInvalid    = "DIGEST_INVALID"
	codeManifestInvalid  = "MANIFEST_INVALID"
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

// DeniedError is how a Gate refuses content: the proxy answers 403 with an
// OCI error body whose code is DENIED, whose message is Message, and whose
// detail is Detail (any JSON-marshalable value, may be nil).
type DeniedError struct {
	Message string
	Detail  any
	// NotFound answers 404 MANIFEST_UNKNOWN instead of 403 DENIED: the
	// manifest sits where signature material is kept but is not of its
	// shape (clients read 404 there as "no signatures").
	NotFound bool
}

func (e *DeniedError) Error() string { return e.Message }

// regError is what every handler returns; only writeError turns it into a
// response. It is the one place where domain errors meet wire codes.
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
	// refusedCredentials marks an upstream's refusal of the proxy's
	// credentials: an upstream error, but not an outage (see isOutage).
	refusedCredentials bool
}

func (e *regError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

func newError(status int, code, format string, args ...any) *regError {
	return &regError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// unavailable is the answer when no decision or no content could be had:
// fail closed, never serve. A 502 means the upstream answered unusably and
// gets UPSTREAM_ERROR, as from upstreamError; any other status UNAVAILABLE.
func unavailable(status int, format string, args ...any) *regError {
	if status == http.StatusBadGateway {
		return upstreamError(format, args...)
	}
	return newError(status, codeUnavailable, format, args...)
}

// upstreamError is 502 UPSTREAM_ERROR: the upstream answered, but with
// nothing the proxy may serve.
func upstreamError(format string, args ...any) *regError {
	return newError(http.StatusBadGateway, codeUpstreamError, format, args...)
}

// refusedCredentials is 502 UPSTREAM_ERROR for an upstream (or its token
// service) that refused the proxy's own credentials: the client was not
// refused by policy, the proxy is misconfigured or its account is.
func refusedCredentials(format string, args ...any) *regError {
	e := upstreamError(format, args...)
	e.refusedCredentials = true
	return e
}

// asRegError maps any error to the wire: a *regError as is, a Gate's
// *DeniedError to 403 DENIED (the only source of DENIED: a policy refusal),
// anything else to 503 UNAVAILABLE.
func asRegError(err error) *regError {
	var re *regError
	if errors.As(err, &re) {
		return re
	}
	var de *DeniedError
	if errors.As(err, &de) {
		if de.NotFound {
			return &regError{Status: http.StatusNotFound, Code: codeManifestUnknown, Message: de.Message}
		}
		return &regError{Status: http.StatusForbidden, Code: codeDenied, Message: de.Message, Detail: de.Detail}
	}
	return unavailable(http.StatusServiceUnavailable, "%v", err)
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

// maxErrorBody bounds how much of an upstream error body is read.
const maxErrorBody = 64 << 10

// fromUpstreamResponse maps an upstream's non-success answer to what the
// client gets. notFound is the code for a 404 without a usable code of its
// own (MANIFEST_UNKNOWN, BLOB_UNKNOWN, NAME_UNKNOWN). It reads and closes
// nothing: the caller owns resp.Body.
func fromUpstreamResponse(registry string, resp *http.Response, notFound string) *regError {
	upstreamMsg := upstreamMessage(resp)
	switch {
	case resp.StatusCode == http.StatusNotFound:
		e := newError(http.StatusNotFound, notFound, "not found on %s", registry)
		if code, msg := firstUpstreamError(resp); code != "" && strings.HasSuffix(code, "_UNKNOWN") {
			e.Code, e.Message = code, msg
		}
		return e
	case resp.StatusCode == http.StatusTooManyRequests:
		e := newError(http.StatusTooManyRequests, codeTooManyRequests, "upstream %s is rate limiting the proxy%s", registry, upstreamMsg)
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			e.Header = http.Header{"Retry-After": {ra}}
		}
		return e
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return refusedCredentials("upstream %s refused the proxy's credentials (%d)%s", registry, resp.StatusCode, upstreamMsg)
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		e := newError(http.StatusRequestedRangeNotSatisfiable, codeRangeUnsatisfied, "requested range not satisfiable")
		if cr := resp.Header.Get("Content-Range"); cr != "" {
			e.Header = http.Header{"Content-Range": {cr}}
		}
		return e
	default:
		return upstreamError("upstream %s answered %d%s", registry, resp.StatusCode, upstreamMsg)
	}
}

// firstUpstreamError reads the first entry of an OCI error body, if any.
func firstUpstreamError(resp *http.Response) (code, message string) {
	if resp.Body == nil {
		return "", ""
	}
	var body struct {
		Errors []wireError `json:"errors"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxErrorBody)).Decode(&body); err != nil || len(body.Errors) == 0 {
		return "", ""
	}
	return body.Errors[0].Code, body.Errors[0].Message
}

// upstreamMessage is a short suffix naming the upstream's own error code.
func upstreamMessage(resp *http.Response) string {
	if resp.StatusCode == http.StatusNotFound {
		return "" // read by firstUpstreamError instead
	}
	if code, msg := firstUpstreamError(resp); code != "" {
		return fmt.Sprintf(": %s %s", code, msg)
	}
	return ""
}

// fromUpstreamError maps a failure to get any answer from the upstream
// (connection refused, timeout, a target the host rules refuse, a failed
// token exchange) to what the client gets: 503 UNAVAILABLE when no answer
// came, 502 UPSTREAM_ERROR for a refusal of the proxy's credentials or
// another answer, a 429 passed on. The message names the upstream and, for
// a token exchange or ping that was answered, the status only: what a
// token realm answered is never copied into it (it may be anything, from
// anywhere the upstream pointed the proxy). The proxy's own refusals,
// network errors and timeouts are described; anything else is not.
func fromUpstreamError(registry string, err error) *regError {
	e := upstreamFailure(registry, err)
	e.cause = err
	return e
}

func upstreamFailure(registry string, err error) *regError {
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode != 0 {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return refusedCredentials("upstream %s refused the proxy's credentials (%d)", registry, te.StatusCode)
		case http.StatusTooManyRequests:
			return newError(http.StatusTooManyRequests, codeTooManyRequests, "upstream %s is rate limiting the proxy (%d)", registry, te.StatusCode)
		}
		return upstreamError("upstream %s: authenticating the proxy failed (%d)", registry, te.StatusCode)
	}
	// Before refusals: ggcr pings an http endpoint over https too, which the
	// host rules refuse; when the http ping fails as well, that is the news.
	if detail, ok := networkFailure(err); ok {
		return unavailable(http.StatusServiceUnavailable, "upstream %s unreachable: %s", registry, detail)
	}
	var refused *refusedError
	if errors.As(err, &refused) {
		return unavailable(http.StatusBadGateway, "upstream %s: %v", registry, refused)
	}
	return unavailable(http.StatusBadGateway, "upstream %s: no usable answer while authenticating or connecting", registry)
}

// networkFailure describes err if it is one whose text is the network's or
// the TLS stack's (dial, DNS, certificate, timeout), not an upstream's.
func networkFailure(err error) (string, bool) {
	var (
		op   *net.OpError
		dns  *net.DNSError
		cert *tls.CertificateVerificationError
		rec  tls.RecordHeaderError
		to   interface{ Timeout() bool }
	)
	switch {
	case errors.As(err, &op):
		return op.Error(), true
	case errors.As(err, &dns):
		return dns.Error(), true
	case errors.As(err, &cert):
		return cert.Error(), true
	case errors.As(err, &rec):
		return "the endpoint does not speak TLS", true
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		return "no answer in time", true
	case errors.As(err, &to) && to.Timeout():
		return "no answer in time", true
	}
	return "", false
}

// isOutage reports whether err means the upstream could not answer (as
// opposed to answering "not found" or refusing the proxy's credentials): a
// 5xx or another unusable answer, a 429, a timeout, no answer.
func isOutage(err error) bool {
	re := asRegError(err)
	switch re.Code {
	case codeUnavailable, codeTooManyRequests:
		return true
	case codeUpstreamError:
		return !re.refusedCredentials
	}
	return false
}
