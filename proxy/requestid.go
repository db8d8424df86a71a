package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"sync/atomic"
)

// requestIDHeader carries a request's ID: taken from the client when it
// sent a usable one (a load balancer's or a tracing proxy's), else made
// here; answered on every response, and logged on the request line and
// the gate's decision line.
const requestIDHeader = "X-Request-Id"

// maxRequestID bounds a client's request ID (it is logged and kept in the
// decision log).
const maxRequestID = 64

// requestIDs makes this process's request IDs: a random prefix chosen at
// start, then a counter, so IDs are unique across restarts and replicas
// without a random read per request.
var requestIDs = struct {
	prefix string
	n      atomic.Uint64
}{prefix: randomPrefix()}

func randomPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails on Linux (crypto/rand panics itself when it cannot read)
	return hex.EncodeToString(b[:])
}

// requestID is r's ID: the client's X-Request-Id when it is 1 to 64
// characters of [A-Za-z0-9._:-], else a new one.
func requestID(r *http.Request) string {
	if id := r.Header.Get(requestIDHeader); usableRequestID(id) {
		return id
	}
	return requestIDs.prefix + "-" + strconv.FormatUint(requestIDs.n.Add(1), 36)
}

func usableRequestID(id string) bool {
	if id == "" || len(id) > maxRequestID {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}
