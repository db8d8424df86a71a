package config

import (
	"fmt"
	"io"
	"net/url"
	"time"
)

// Config is the configuration of "portcullis serve", as returned by [Load]
// and [Parse]: defaults applied, names normalised, paths absolute, files
// checked. Each field's comment gives its YAML name and its default.
type Config struct {
	// Path is the absolute path of the file the configuration was loaded
	// from. Set by Load; empty when the Config comes from Parse.
	Path string

	// Listen is the host:port of the registry API that clients pull from.
	// YAML "listen"; default "127.0.0.1:5050".
	Listen string

	// AdminListen is the host:port serving /metrics, /healthz and /readyz.
	// YAML "adminListen"; default "127.0.0.1:9090"; must not be empty.
	AdminListen string

	// TLS, when set, makes Listen serve HTTPS.
	// YAML "tls"; default nil (plain HTTP).
	TLS *TLS

	// AllowAnonymousClients acknowledges that clients that present no
	// certificate may use the proxy, and through it the credentials of every
	// upstream with Auth. Loading fails when an upstream has Auth,
	// TLS.ClientCAFile is unset and this is false.
	// YAML "allowAnonymousClients"; default false.
	AllowAnonymousClients bool

	// Upstreams are the registries the proxy pulls from: at least one, with
	// distinct Registry names.
	// YAML "upstreams"; required.
	Upstreams []Upstream

	// DefaultRegistry is the registry used for references that name none.
	// When set it is the Registry of one of Upstreams (normalised like it,
	// see NormalizeRegistry).
	// YAML "defaultRegistry"; default "" (none).
	DefaultRegistry string

	// TagTTL is how long the digest a tag resolved to is reused before
	// asking the upstream again; 0 asks the upstream every time.
	// YAML "tagTTL"; default 30s; >= 0.
	TagTTL time.Duration

	// ManifestCacheBytes bounds the in-memory cache of manifests by digest.
	// YAML "manifestCacheBytes"; default 67108864 (64 MiB); > 0.
	ManifestCacheBytes int64

	// UpstreamTimeout bounds each exchange with an upstream: manifests,
	// tag lists, referrers and token exchanges complete within it in total
	// (headers and body); a blob's headers come within it, and its body
	// gets it between two reads, with no fixed total.
	// YAML "upstreamTimeout"; default 30s; > 0.
	UpstreamTimeout time.Duration

	// ClientIdleTimeout bounds how long one write to a client may go
	// without progress; the bound is renewed for every write (at most 256
	// KiB), so a slow client is served as long as it keeps reading and one
	// that stops is disconnected, freeing its transfer, after this long.
	// YAML "clientIdleTimeout"; default the value of UpstreamTimeout; > 0.
	ClientIdleTimeout time.Duration

	// ShutdownTimeout is how long in-flight requests may still run after
	// SIGTERM.
	// YAML "shutdownTimeout"; default 30s; > 0.
	ShutdownTimeout time.Duration

	// ShutdownDelay is how long after SIGTERM the listeners stay open,
	// with /readyz answering 503, before in-flight requests are finished
	// and the listeners closed: load balancers and Kubernetes endpoints
	// stop sending new pulls meanwhile.
	// YAML "shutdownDelay"; default 5s; >= 0.
	ShutdownDelay time.Duration

	// LogLevel is the least severe level logged: one of [LogLevels]. The
	// --log-level flag, when given, overrides it.
	// YAML "logLevel"; default "info".
	LogLevel string

	// PolicyFile is the absolute path of the verification policy file; this
	// package only checks that it is readable. Loading fails when it is
	// unset and Unverified is false.
	// YAML "policyFile"; required unless "unverified: true".
	PolicyFile string

	// Unverified acknowledges that the proxy has no PolicyFile and so serves
	// every image without verifying any signature: a plain mirror that only
	// checks digests. Loading fails when it is true and PolicyFile is set
	// (which of the two was meant?).
	// YAML "unverified"; default false.
	Unverified bool

	// VerdictTTL is how long a verification verdict that allowed an image
	// is reused.
	// YAML "verdictTTL"; default 10m; >= 0.
	VerdictTTL time.Duration

	// DenyTTL is how long a verdict that denied an image is reused.
	// YAML "denyTTL"; default 30s; >= 0.
	DenyTTL time.Duration

	// TagStaleIfError is how long past its TagTTL a tag's resolution may
	// still be used while the upstream cannot answer (5xx, 429, timeout).
	// YAML "tagStaleIfError"; default: staleIfError if given, else 1h; >= 0.
	TagStaleIfError time.Duration

	// VerdictStaleIfError is how long past its VerdictTTL an allow verdict
	// (and the grants it made) may still be used while deciding again fails
	// with an error. A denial never becomes an allow this way.
	// YAML "verdictStaleIfError"; default: staleIfError if given, else 1h; >= 0.
	VerdictStaleIfError time.Duration

	// staleIfError is the deprecated YAML "staleIfError", which sets both
	// TagStaleIfError and VerdictStaleIfError where they are not given;
	// -1 when absent.
	staleIfError time.Duration

	// VerdictCacheEntries bounds the in-process verdict store: verdicts plus
	// the grants they hold (an image's config and layers, an index's
	// children), evicted together, least recently used first. About 360
	// bytes an entry (a verdict or one grant: an image with 3 layers is 4
	// entries), measured in-process.
	// YAML "verdictCacheEntries"; default 1000000; >= 1.
	VerdictCacheEntries int64

	// MaxSignatures is the most signatures examined for one image.
	// YAML "maxSignatures"; default 32; >= 1.
	MaxSignatures int

	// DecisionTimeout bounds the time spent reaching one verdict.
	// YAML "decisionTimeout"; default 10s; > 0.
	DecisionTimeout time.Duration

	// Cache, when set, is the content store on disk: verified manifests,
	// tags and blobs kept so that warm pulls touch no upstream and pulls
	// go on while it is down.
	// YAML "cache"; default nil (memory caches only).
	Cache *Cache

	// DecisionLog is the record of recent decisions the admin listener
	// serves (/decisions) and `portcullis why` reads.
	// YAML "decisionLog".
	DecisionLog DecisionLog

	// Redis, when set, is where replicas share verdicts, grants, the
	// decision log, purges and reloads, so that they act as one.
	// YAML "redis"; default nil (each replica alone).
	Redis *Redis
}

// Redis configures the state replicas share. YAML "redis".
//
// The password and the HMAC key, read at load time, are unexported so
// that they are never marshalled, and Redis formats itself without them.
type Redis struct {
	// Address is the server's host:port. YAML "address"; required.
	Address string
	// Username is the ACL user. YAML "username"; optional.
	Username string
	// PasswordFile holds the password (less a trailing newline).
	// YAML "passwordFile"; optional.
	PasswordFile string
	// TLS, when set, connects over TLS. YAML "tls".
	TLS *RedisTLS
	// KeyPrefix starts every key and channel name, so that several
	// proxies may share one server. YAML "keyPrefix"; default "portcullis/".
	KeyPrefix string
	// Timeout bounds one Redis operation on the request path (a lookup,
	// a lease, a publish); past it the replica goes on alone for that
	// request. Raise it for a Redis further away than the same zone.
	// YAML "timeout"; default 50ms, from 1ms to 2s, under a third of
	// DecisionTimeout (the renewal period of a decision's lease).
	Timeout time.Duration
	// HMACKeyFile holds the key every shared value is authenticated with
	// (at least 32 bytes; the same file on every replica). Anyone who can
	// write to Redis could otherwise allow images.
	// YAML "hmacKeyFile"; required.
	HMACKeyFile string

	password string
	hmacKey  []byte
}

// RedisTLS is the TLS of the connection to Redis. YAML "redis.tls".
type RedisTLS struct {
	// CAFile verifies the server (default: the system's roots).
	// YAML "caFile".
	CAFile string
	// CertFile and KeyFile are a client certificate, both or neither.
	// YAML "certFile", "keyFile".
	CertFile, KeyFile string
}

// Password is the Redis password read from PasswordFile ("" without one).
func (r *Redis) Password() string { return r.password }

// HMACKey is the key read from HMACKeyFile.
func (r *Redis) HMACKey() []byte { return r.hmacKey }

// String describes r without its password and key.
func (r Redis) String() string {
	return fmt.Sprintf("{Address:%s Username:%s PasswordFile:%s TLS:%v KeyPrefix:%s Timeout:%v HMACKeyFile:%s}",
		r.Address, r.Username, r.PasswordFile, r.TLS, r.KeyPrefix, r.Timeout, r.HMACKeyFile)
}

// Format prints r as String does, whatever the verb.
func (r Redis) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, r.String()) }

// DefaultRedisTimeout and MaxRedisTimeout bound redis.timeout (the
// maximum stays below the Redis client's 3 s read backstop).
const (
	DefaultRedisTimeout = 50 * time.Millisecond
	MaxRedisTimeout     = 2 * time.Second
)

// MinHMACKeyBytes is the shortest key hmacKeyFile may hold.
const MinHMACKeyBytes = 32

// DecisionLog sizes the decision log. YAML "decisionLog".
type DecisionLog struct {
	// Entries is how many of the latest records are kept.
	// YAML "entries"; default 10000; 1 to 1,000,000 (each typically under
	// 1 KiB, at most about 4 KiB).
	Entries int64
}

// Cache configures the content store. YAML "cache".
type Cache struct {
	// Dir is the absolute path of the store's directory (created if
	// missing; one process at a time).
	// YAML "dir"; required.
	Dir string

	// MaxSize is the store's size limit in bytes: above it, the least
	// recently used content is evicted down to 90% of it.
	// YAML "maxSize", with a unit: B, KiB, MiB, GiB or TiB ("50GiB");
	// default 50GiB; > 0.
	MaxSize int64

	// MaxStale is how long past tagTTL a stored tag resolution is used
	// while the upstream cannot answer; 0 means no limit (air-gapped). With
	// a store it also caps tagStaleIfError and verdictStaleIfError.
	// YAML "maxStale"; default 24h; >= 0.
	MaxStale time.Duration
}

// NoStaleLimit is the stale-if-error window of "cache.maxStale: 0": ten
// years, as good as no limit.
const NoStaleLimit = 10 * 365 * 24 * time.Hour

// Default content store settings.
const (
	defaultCacheMaxSize  = 50 << 30
	defaultCacheMaxStale = 24 * time.Hour
)

// TLS configures HTTPS on [Config.Listen]. YAML "tls".
type TLS struct {
	// CertFile is the absolute path of the PEM server certificate (chain).
	// YAML "certFile"; required.
	CertFile string

	// KeyFile is the absolute path of the PEM private key of CertFile.
	// YAML "keyFile"; required.
	KeyFile string

	// ClientCAFile is the absolute path of a PEM bundle of CAs. When set,
	// the listener requires clients to present a certificate signed by one
	// of them.
	// YAML "clientCAFile"; default "" (no client certificates).
	ClientCAFile string
}

// Upstream is one registry the proxy pulls from. YAML "upstreams[i]".
type Upstream struct {
	// Registry is the name clients and policies use for this registry: a
	// lower-case host[:port]. Docker Hub's names (docker.io,
	// index.docker.io, registry-1.docker.io) are all "docker.io".
	// YAML "registry"; required.
	Registry string

	// Endpoint is where requests for Registry are sent: scheme http or
	// https and host[:port], with no path, query, fragment or user info.
	// YAML "endpoint"; default https://<Registry>, and
	// https://registry-1.docker.io for docker.io.
	Endpoint *url.URL

	// Insecure allows an http Endpoint, and with an https Endpoint skips
	// TLS certificate verification.
	// YAML "insecure"; default false; must be true for an http Endpoint.
	Insecure bool

	// CAFile is the absolute path of an extra PEM CA bundle to trust for
	// Endpoint.
	// YAML "caFile"; default "" (none).
	CAFile string

	// Auth holds the credentials presented to the upstream.
	// YAML "auth"; default nil (anonymous).
	Auth *Auth

	// FollowHosts are the hosts besides Endpoint that the upstream's
	// redirects and token realms may lead the proxy to, such as the object
	// store a registry redirects blob GETs to. Each entry is "host" (on the
	// default port of the target's scheme), "host:port" or "*.suffix"
	// (every name ending in .suffix, not suffix itself), lower-cased. A
	// name is contacted only if none of its resolved addresses is loopback,
	// link-local or unspecified; an IP address entry is used as written.
	// Endpoint itself is always followed (compared as scheme://host:port
	// text: localhost is not 127.0.0.1), and nothing is followed from an
	// https Endpoint to plain http.
	// The registry docker.io always follows, on top of these, auth.docker.io
	// (its token service) and its blob stores
	// production.cloudflare.docker.com, production.cloudfront.docker.com,
	// docker-images-prod.6aa30f8b08e16409b46e0173d6de2f56.r2.cloudflarestorage.com
	// and docker-images-prod.r2.cloudflarestorage.com.
	// YAML "followHosts"; default none.
	FollowHosts []string
}

// Auth is the credentials the proxy presents to an upstream. YAML "auth".
//
// The password, read from PasswordFile at load time, is kept unexported so
// that it is never marshalled, and Auth formats itself without it, so it
// does not end up in logs. Get it with [Upstream.Password].
type Auth struct {
	// Username is the user name. YAML "username"; required.
	Username string

	// PasswordFile is the absolute path of the file the password was read
	// from. YAML "passwordFile"; required.
	PasswordFile string

	password string
}

// Password returns the upstream's password, read from Auth.PasswordFile at
// load time without its trailing newline; "" when the upstream has no Auth.
func (u Upstream) Password() string {
	if u.Auth == nil {
		return ""
	}
	return u.Auth.password
}

// String describes a without its password.
func (a Auth) String() string {
	return fmt.Sprintf("{Username:%s PasswordFile:%s}", a.Username, a.PasswordFile)
}

// Format prints a as String does, whatever the verb, so that no fmt verb
// (%v, %+v, %#v, %x, ...) can print the password.
func (a Auth) Format(f fmt.State, verb rune) {
	_, _ = io.WriteString(f, a.String())
}

// LogLevels are the values of [Config.LogLevel], least severe first.
var LogLevels = []string{"debug", "info", "warn", "error"}

// unsetDuration marks a duration the file did not give (decoded values
// are never negative).
const unsetDuration = -1

// defaultStaleIfError is the stale-if-error window when none is given.
const defaultStaleIfError = time.Hour

// defaults returns a Config holding the default of every setting. Parse
// decodes the file over it, so settings the file leaves out keep these
// values while settings it gives, even as 0, replace them.
func defaults() *Config {
	return &Config{
		Listen:              "127.0.0.1:5050",
		AdminListen:         "127.0.0.1:9090",
		TagTTL:              30 * time.Second,
		ManifestCacheBytes:  64 << 20,
		UpstreamTimeout:     30 * time.Second,
		ShutdownTimeout:     30 * time.Second,
		ShutdownDelay:       5 * time.Second,
		LogLevel:            "info",
		VerdictTTL:          10 * time.Minute,
		DenyTTL:             30 * time.Second,
		TagStaleIfError:     unsetDuration,
		VerdictStaleIfError: unsetDuration,
		staleIfError:        unsetDuration,
		VerdictCacheEntries: 1_000_000,
		MaxSignatures:       32,
		DecisionTimeout:     10 * time.Second,
		DecisionLog:         DecisionLog{Entries: 10_000},
	}
}
