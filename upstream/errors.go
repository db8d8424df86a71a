package upstream

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
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/portcullis-dev/portcullis/oci"
)

// Kind classifies why an upstream gave nothing usable. The proxy maps each
// kind to one wire answer (proxy/errors.go); the gate reads only whether
// content is absent (errors.Is oci.ErrNotFound) and whether the upstream is
// down (IsOutage).
type Kind int

const (
	// NotFound: the upstream answered 404.
	NotFound Kind = iota + 1
	// Unauthorized: the upstream, or its token service, refused the
	// proxy's own credentials (401, 403). Not an outage: the proxy or its
	// account is misconfigured.
	Unauthorized
	// RateLimited: the upstream answered 429; RetryAfter says when to try.
	RateLimited
	// Unavailable: no answer came (connection refused, DNS, TLS).
	Unavailable
	// Timeout: no (complete) answer came in time.
	Timeout
	// BadResponse: the upstream answered, but unusably: a 5xx, a body cut
	// short, too large or malformed, a redirect or realm the host rules
	// refuse.
	BadResponse
	// DigestMismatch: the bytes sent do not hash to the digest asked for
	// (or, for a tag, to the digest the upstream claimed).
	DigestMismatch
	// RangeNotSatisfiable: the requested range lies outside the blob;
	// ContentRange holds the upstream's "bytes */size".
	RangeNotSatisfiable
)

var kindNames = map[Kind]string{
	NotFound: "not found", Unauthorized: "unauthorized", RateLimited: "rate limited",
	Unavailable: "unavailable", Timeout: "timeout", BadResponse: "bad response",
	DigestMismatch: "digest mismatch", RangeNotSatisfiable: "range not satisfiable",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Error is every failure of the Client to get usable content from an
// upstream. Message is safe to show a client: it names the upstream and
// what went wrong, never what a token realm or a redirect target answered.
type Error struct {
	Kind     Kind
	Registry string
	Message  string
	// Code is the upstream's own OCI error code for a 404 when it sent one
	// ending in _UNKNOWN (MANIFEST_UNKNOWN, BLOB_UNKNOWN, NAME_UNKNOWN).
	Code string
	// RetryAfter is a 429's Retry-After header, as sent.
	RetryAfter string
	// ContentRange is a 416's Content-Range header ("bytes */size").
	ContentRange string
	// Err is the cause, for logs only: its text may hold what an upstream
	// or a token realm answered.
	Err error
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is makes a NotFound Error match oci.ErrNotFound.
func (e *Error) Is(target error) bool { return target == oci.ErrNotFound && e.Kind == NotFound }

// IsOutage reports whether err means the upstream could not answer (as
// opposed to "not found", or a refusal of the proxy's credentials): no
// answer, no answer in time, a 429, a 5xx or another unusable answer. Only
// an outage lets a stale cached tag or verdict stand in.
func IsOutage(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Kind {
	case Unavailable, Timeout, RateLimited, BadResponse, DigestMismatch:
		return true
	}
	return false
}

func newError(kind Kind, registry, format string, args ...any) *Error {
	return &Error{Kind: kind, Registry: registry, Message: fmt.Sprintf(format, args...)}
}

// maxErrorBody bounds how much of an upstream error body is read.
const maxErrorBody = 64 << 10

// fromResponse maps an upstream's non-success answer. It reads (a bounded
// part of) the body but closes nothing: the caller owns resp.Body.
func fromResponse(registry string, resp *http.Response) *Error {
	switch resp.StatusCode {
	case http.StatusNotFound:
		e := newError(NotFound, registry, "not found on %s", registry)
		if code, msg := firstError(resp); code != "" && strings.HasSuffix(code, "_UNKNOWN") {
			e.Code, e.Message = code, msg
		}
		return e
	case http.StatusTooManyRequests:
		e := newError(RateLimited, registry, "upstream %s is rate limiting the proxy%s", registry, errorSuffix(resp))
		e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
		return e
	case http.StatusUnauthorized, http.StatusForbidden:
		return newError(Unauthorized, registry, "upstream %s refused the proxy's credentials (%d)%s", registry, resp.StatusCode, errorSuffix(resp))
	case http.StatusRequestedRangeNotSatisfiable:
		e := newError(RangeNotSatisfiable, registry, "requested range not satisfiable")
		e.ContentRange = resp.Header.Get("Content-Range")
		return e
	}
	return newError(BadResponse, registry, "upstream %s answered %d%s", registry, resp.StatusCode, errorSuffix(resp))
}

// firstError reads the first entry of an OCI error body, if any.
func firstError(resp *http.Response) (code, message string) {
	if resp.Body == nil {
		return "", ""
	}
	var body struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxErrorBody)).Decode(&body); err != nil || len(body.Errors) == 0 {
		return "", ""
	}
	return body.Errors[0].Code, body.Errors[0].Message
}

// errorSuffix is a short suffix naming the upstream's own error code.
func errorSuffix(resp *http.Response) string {
	if code, msg := firstError(resp); code != "" {
		return fmt.Sprintf(": %s %s", code, msg)
	}
	return ""
}

// fromTransportError maps a failure to get any answer (connection refused,
// timeout, a target the host rules refuse, a failed ping or token
// exchange). The message names the upstream and, for a token exchange or
// ping that was answered, the status only: what a token realm answered is
// never copied into it (it may be anything, from anywhere the upstream
// pointed the proxy). The proxy's own refusals, network errors and
// timeouts are described; anything else is not.
func fromTransportError(registry string, err error) *Error {
	e := transportFailure(registry, err)
	e.Err = err
	return e
}

func transportFailure(registry string, err error) *Error {
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode != 0 {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return newError(Unauthorized, registry, "upstream %s refused the proxy's credentials (%d)", registry, te.StatusCode)
		case http.StatusTooManyRequests:
			e := newError(RateLimited, registry, "upstream %s is rate limiting the proxy (%d)", registry, te.StatusCode)
			var ra *retryAfterError
			if errors.As(err, &ra) {
				e.RetryAfter = ra.retryAfter
			}
			return e
		}
		return newError(BadResponse, registry, "upstream %s: authenticating the proxy failed (%d)", registry, te.StatusCode)
	}
	// Before refusals: ggcr pings an http endpoint over https too, which the
	// host rules refuse; when the http ping fails as well, that is the news.
	if detail, timeout, ok := networkFailure(err); ok {
		if timeout {
			return newError(Timeout, registry, "upstream %s: no answer in time", registry)
		}
		return newError(Unavailable, registry, "upstream %s unreachable: %s", registry, detail)
	}
	var refused *refusedError
	if errors.As(err, &refused) {
		return newError(BadResponse, registry, "upstream %s: %v", registry, refused)
	}
	return newError(BadResponse, registry, "upstream %s: no usable answer while authenticating or connecting", registry)
}

// networkFailure describes err if it is one whose text is the network's or
// the TLS stack's (dial, DNS, certificate, timeout), not an upstream's.
func networkFailure(err error) (detail string, timeout, ok bool) {
	var (
		op   *net.OpError
		dns  *net.DNSError
		cert *tls.CertificateVerificationError
		rec  tls.RecordHeaderError
		to   interface{ Timeout() bool }
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		return "no answer in time", true, true
	case errors.As(err, &to) && to.Timeout():
		return "no answer in time", true, true
	case errors.As(err, &op):
		return op.Error(), false, true
	case errors.As(err, &dns):
		return dns.Error(), false, true
	case errors.As(err, &cert):
		return cert.Error(), false, true
	case errors.As(err, &rec):
		return "the endpoint does not speak TLS", false, true
	}
	return "", false, false
}
