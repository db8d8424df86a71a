package config

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/yamlfile"
)

// validate checks what decoding each value alone cannot: registry names,
// settings that must agree with each other, and files on disk. It completes
// c on the way: registry names normalised, endpoints defaulted, paths made
// absolute against dir, passwords read. A named file that is absent or
// unreadable by this user is reported with severity absent.
func validate(c *Config, dir string, r *yamlfile.Report, absent yamlfile.Severity) {
	if c.ClientIdleTimeout == 0 { // not given (a given 0 is reported)
		c.ClientIdleTimeout = c.UpstreamTimeout
	}
	stale := c.staleIfError
	if stale == unsetDuration {
		stale = defaultStaleIfError
	}
	for _, d := range []*time.Duration{&c.TagStaleIfError, &c.VerdictStaleIfError} {
		if *d == unsetDuration {
			*d = stale
		}
	}
	if k := c.Cache; k != nil {
		if k.Dir != "" {
			k.Dir = absolute(dir, k.Dir)
		}
		// With a content store, maxStale is how long every stale answer
		// may be used, in memory as on disk, whatever staleIfError says.
		stale := k.MaxStale
		if stale == 0 {
			stale = NoStaleLimit
		}
		c.TagStaleIfError, c.VerdictStaleIfError = stale, stale
	}
	checkListeners(c, r)
	checkUpstreams(c, r)
	checkDefaultRegistry(c, r)
	checkCredentialExposure(c, r)
	checkRedis(c, r)
	checkFiles(c, dir, r, absent)
}

// checkRedis rejects half a client certificate, and a Redis budget the
// decision's lease cannot be renewed in: a replica deciding renews it every
// decisionTimeout/3 (fleet/lease.go), each renewal taking up to timeout.
func checkRedis(c *Config, r *yamlfile.Report) {
	if c.Redis != nil && c.Redis.Timeout >= c.DecisionTimeout/3 {
		r.Errorf("redis.timeout", "%s must be under a third of decisionTimeout (%s): a decision's lease in Redis is renewed every decisionTimeout/3", c.Redis.Timeout, c.DecisionTimeout)
	}
	if c.Redis == nil || c.Redis.TLS == nil {
		return
	}
	if t := c.Redis.TLS; (t.CertFile == "") != (t.KeyFile == "") {
		r.Errorf("redis.tls", "certFile and keyFile go together: give both for a client certificate, or neither")
	}
}

// checkListeners rejects the registry and admin servers sharing an address.
func checkListeners(c *Config, r *yamlfile.Report) {
	if c.Listen != c.AdminListen {
		return
	}
	if _, port, err := net.SplitHostPort(c.Listen); err == nil && port == "0" {
		return // two different ports picked by the system
	}
	r.Errorf("adminListen", "%s is also the address of listen; the admin server needs an address of its own", yamlfile.Quote(c.AdminListen))
}

// checkUpstreams normalises and checks registry names, rejects duplicates,
// defaults endpoints and checks that insecure agrees with the endpoint.
func checkUpstreams(c *Config, r *yamlfile.Report) {
	first := make(map[string]string) // registry -> path of the first upstream with it
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		path := fmt.Sprintf("upstreams[%d]", i)
		if u.Registry != "" { // "" is reported as missing or empty
			u.Registry = NormalizeRegistry(u.Registry)
			if err := checkRegistry(u.Registry); err != nil {
				r.Errorf(path+".registry", "%v", err)
			} else if prev, dup := first[u.Registry]; dup {
				r.Errorf(path+".registry", "%s is already configured by %s at line %d%s",
					yamlfile.Quote(u.Registry), prev, r.Line(prev+".registry"), dockerHubNote(u.Registry))
			} else {
				first[u.Registry] = path
			}
		}
		switch {
		case u.Endpoint == nil:
			if u.Registry != "" {
				u.Endpoint = defaultEndpoint(u.Registry)
			}
		case u.Endpoint.Scheme == "http" && !u.Insecure:
			r.Errorf(path+".endpoint", "%s is plain http; set \"insecure: true\" on this upstream to allow it", yamlfile.Quote(u.Endpoint.String()))
		}
		if u.Insecure && u.CAFile != "" {
			r.Errorf(path+".caFile", "is ignored because \"insecure: true\" turns off certificate verification; remove one of them")
		}
	}
}

func dockerHubNote(registry string) string {
	if registry != dockerHub {
		return ""
	}
	return " (docker.io, index.docker.io and registry-1.docker.io are one registry)"
}

// checkDefaultRegistry normalises defaultRegistry and checks that it names
// a configured upstream.
func checkDefaultRegistry(c *Config, r *yamlfile.Report) {
	if c.DefaultRegistry == "" {
		return
	}
	c.DefaultRegistry = NormalizeRegistry(c.DefaultRegistry)
	var names []string
	for _, u := range c.Upstreams {
		if u.Registry == c.DefaultRegistry {
			return
		}
		if u.Registry != "" && !slices.Contains(names, u.Registry) {
			names = append(names, u.Registry)
		}
	}
	r.Errorf("defaultRegistry", "%s is not the registry of any upstream (configured: %s)",
		yamlfile.Quote(c.DefaultRegistry), strings.Join(names, ", "))
}

// checkCredentialExposure refuses upstream credentials on a proxy that does
// not authenticate its clients, unless the administrator says that is fine:
// whoever can reach the proxy would pull with those credentials.
func checkCredentialExposure(c *Config, r *yamlfile.Report) {
	if c.AllowAnonymousClients || (c.TLS != nil && c.TLS.ClientCAFile != "") {
		return
	}
	var firstPath string
	var registries []string
	for i, u := range c.Upstreams {
		if u.Auth == nil {
			continue
		}
		if firstPath == "" {
			firstPath = fmt.Sprintf("upstreams[%d].auth", i)
		}
		if u.Registry != "" {
			registries = append(registries, u.Registry)
		}
	}
	if firstPath == "" {
		return
	}
	r.Errorf(firstPath,
		"the proxy would hand its upstream credentials (for %s) to anyone who can reach it on %s, "+
			"because it does not require client certificates; "+
			"set tls.clientCAFile to accept only clients with a certificate from your CA, "+
			"or set \"allowAnonymousClients: true\" if everyone who can reach the proxy may use these credentials",
		strings.Join(registries, ", "), c.Listen)
}

// checkVerification makes serving unverified images an explicit decision:
// a config names the policy to enforce or says "unverified: true", never
// neither (a forgotten policyFile would quietly serve everything) and never
// both (which was meant?). seen holds the top-level keys the file sets, each
// with its line; top is the line of the top-level mapping.
func checkVerification(c *Config, seen map[string]int, top int, r *yamlfile.Report) {
	policyLine, hasPolicy := seen["policyFile"] // also when its value was rejected
	switch {
	case !hasPolicy && !c.Unverified:
		r.ErrorAt(top, "", `missing field "policyFile": without a policy no signature is verified; `+
			`set policyFile to the policy to enforce (see deploy/policy-example.yaml), `+
			`or set "unverified: true" to run a plain mirror that serves every image unverified`)
	case hasPolicy && c.Unverified:
		r.Errorf("unverified", `"unverified: true" contradicts policyFile (line %d), which enforces a policy; remove one of them`, policyLine)
	}
}
