package config

import (
	"testing"
)

// TestValidateErrors covers problems found after decoding: registry names,
// settings that must agree, and files on disk.
func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "invalid registry names",
			yaml: y(
				"upstreams:",
				"  - registry: bad_host",
				"  - registry: https://r.example",
				"  - registry: r.example/team",
				"  - registry: r.example:99999",
			),
			want: []string{
				`config.yaml:2: upstreams[0].registry: "bad_host" is not a valid registry name (want a host[:port] such as "ghcr.io" or "registry.example:5000")`,
				`config.yaml:3: upstreams[1].registry: "https://r.example" is a URL, not a registry name (want a host[:port] such as "ghcr.io" or "registry.example:5000"; put the URL in endpoint)`,
				`config.yaml:4: upstreams[2].registry: "r.example/team" is not a valid registry name`,
				`config.yaml:5: upstreams[3].registry: "r.example:99999": port "99999" is not a number from 1 to 65535`,
			},
		},
		{
			name: "duplicate registry",
			yaml: y(
				"upstreams:",
				"  - registry: r.example",
				"  - registry: q.example",
				"  - registry: R.Example",
			),
			want: []string{`config.yaml:4: upstreams[2].registry: "r.example" is already configured by upstreams[0] at line 2`},
		},
		{
			name: "duplicate Docker Hub under another name",
			yaml: y(
				"upstreams:",
				"  - registry: index.docker.io",
				"  - registry: docker.io",
				"  - registry: registry-1.docker.io",
			),
			want: []string{
				`config.yaml:3: upstreams[1].registry: "docker.io" is already configured by upstreams[0] at line 2 (docker.io, index.docker.io and registry-1.docker.io are one registry)`,
				`config.yaml:4: upstreams[2].registry: "docker.io" is already configured by upstreams[0] at line 2 (docker.io`,
			},
		},
		{
			name: "defaultRegistry not configured",
			yaml: y(
				"upstreams:",
				"  - registry: r.example",
				"  - registry: index.docker.io",
				"defaultRegistry: quay.io",
			),
			want: []string{`config.yaml:4: defaultRegistry: "quay.io" is not the registry of any upstream (configured: r.example, docker.io)`},
		},
		{
			name: "http endpoint without insecure",
			yaml: y(
				"upstreams:",
				"  - registry: r.example",
				"    endpoint: http://mirror.internal:5000",
				"  - registry: q.example",
				"    endpoint: http://mirror.internal:5001",
				"    insecure: false",
			),
			want: []string{
				`config.yaml:3: upstreams[0].endpoint: "http://mirror.internal:5000" is plain http; set "insecure: true" on this upstream to allow it`,
				`config.yaml:5: upstreams[1].endpoint: "http://mirror.internal:5001" is plain http`,
			},
		},
		{
			// The example of an error in the package documentation.
			name: "endpoint scheme",
			yaml: y(
				"listen: 127.0.0.1:5050",
				"adminListen: 127.0.0.1:9090",
				"",
				"# upstreams",
				"upstreams:",
				"  - registry: registry.example",
				"    endpoint: ftp://mirror.internal:5000",
			),
			want: []string{`config.yaml:7: upstreams[0].endpoint: scheme "ftp" not supported (want http or https)`},
		},
		{
			name: "endpoint must be scheme and host only",
			yaml: y(
				"upstreams:",
				"  - {registry: a.example, endpoint: mirror.internal:5000}",
				"  - {registry: b.example, endpoint: 'https://mirror.internal/v2/'}",
				"  - {registry: c.example, endpoint: 'https://mirror.internal?x=1'}",
				"  - {registry: d.example, endpoint: 'https://mirror.internal/#top'}",
				"  - {registry: e.example, endpoint: 'https://bot:hunter2@mirror.internal'}",
				"  - {registry: f.example, endpoint: 'https://'}",
				"  - {registry: g.example, endpoint: ''}",
			),
			want: []string{
				`config.yaml:2: upstreams[0].endpoint: "mirror.internal:5000" is not an absolute URL (want scheme://host[:port] such as "https://mirror.internal:5000")`,
				`config.yaml:3: upstreams[1].endpoint: "https://mirror.internal/v2/" must not have a path`,
				`config.yaml:4: upstreams[2].endpoint: "https://mirror.internal?x=1" must not have a query`,
				`config.yaml:5: upstreams[3].endpoint: "https://mirror.internal/#top" must not have a fragment`,
				`config.yaml:6: upstreams[4].endpoint: "https://bot:xxxxx@mirror.internal" must not hold user info; put credentials in auth`,
				`config.yaml:7: upstreams[5].endpoint: "https://" has no valid host`,
				`config.yaml:8: upstreams[6].endpoint: must not be empty`,
			},
		},
		{
			name: "caFile with insecure",
			yaml: y(
				"upstreams:",
				"  - registry: r.example",
				"    insecure: true",
				"    caFile: ca.pem",
			),
			want: []string{`config.yaml:4: upstreams[0].caFile: is ignored because "insecure: true" turns off certificate verification; remove one of them`},
		},
		{
			name: "listen and adminListen the same",
			yaml: y("upstreams: [{registry: r.example}]", "listen: :8080", "adminListen: :8080"),
			want: []string{`config.yaml:3: adminListen: ":8080" is also the address of listen; the admin server needs an address of its own`},
		},
		{
			name: "files that are not there or not files",
			yaml: y(
				"tls: {certFile: missing.crt, keyFile: subdir}",
				"upstreams:",
				"  - registry: r.example",
				"    caFile: /nonexistent/ca.pem",
				"policyFile: policy.yml",
			),
			want: []string{
				`config.yaml:1: tls.certFile: stat DIR/missing.crt: no such file or directory`,
				`config.yaml:1: tls.keyFile: DIR/subdir is not a regular file`,
				`config.yaml:4: upstreams[0].caFile: stat /nonexistent/ca.pem: no such file or directory`,
				`config.yaml:5: policyFile: stat DIR/policy.yml: no such file or directory`,
			},
		},
		{
			name: "password file missing",
			yaml: y(
				"allowAnonymousClients: true",
				"upstreams:",
				"  - registry: r.example",
				"    auth:",
				"      username: bot",
				"      passwordFile: secrets/pw",
			),
			want: []string{`config.yaml:6: upstreams[0].auth.passwordFile: stat DIR/secrets/pw: no such file or directory`},
		},
		{
			name: "password file empty",
			yaml: y(
				"allowAnonymousClients: true",
				"upstreams:",
				"  - registry: r.example",
				"    auth: {username: bot, passwordFile: policy.yaml}",
				"  - registry: q.example",
				"    auth: {username: bot, passwordFile: empty}",
			),
			want: []string{`config.yaml:6: upstreams[1].auth.passwordFile: password file DIR/empty is empty`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := fixture(t)
			writeFile(t, dir+"/empty", "\n")
			c, err := Parse([]byte(chosen(tc.yaml)), "config.yaml", dir)
			if c != nil {
				t.Errorf("got a Config with the error: %+v", c)
			}
			wantErrors(t, err, dir, tc.want)
		})
	}
}

// TestCredentialExposure checks that upstream credentials are refused on a
// proxy that lets anyone in, unless the administrator says so.
func TestCredentialExposure(t *testing.T) {
	const (
		withAuth = "  - {registry: r.example, auth: {username: bot, passwordFile: pw}}"
		noAuth   = "  - {registry: q.example}"
		tlsNoCA  = "tls: {certFile: tls.crt, keyFile: tls.key}"
		tlsCA    = "tls: {certFile: tls.crt, keyFile: tls.key, clientCAFile: clients.pem}"
		wantMsg  = `the proxy would hand its upstream credentials (for r.example) to anyone who can reach it on 127.0.0.1:5050, ` +
			`because it does not require client certificates; set tls.clientCAFile to accept only clients with a certificate from your CA, ` +
			`or set "allowAnonymousClients: true" if everyone who can reach the proxy may use these credentials`
	)
	tests := []struct {
		name string
		yaml string
		want []string // nil: loads
	}{
		{
			name: "auth without TLS",
			yaml: y("upstreams:", noAuth, withAuth),
			want: []string{`config.yaml:3: upstreams[1].auth: ` + wantMsg},
		},
		{
			name: "auth with TLS but no client certificates",
			yaml: y(tlsNoCA, "upstreams:", withAuth),
			want: []string{`config.yaml:3: upstreams[0].auth: ` + wantMsg},
		},
		{
			name: "anonymous clients not allowed explicitly",
			yaml: y("allowAnonymousClients: false", "upstreams:", withAuth),
			want: []string{`config.yaml:3: upstreams[0].auth: ` + wantMsg},
		},
		{
			name: "one problem for all upstreams with auth",
			yaml: y("upstreams:", withAuth, "  - {registry: docker.io, auth: {username: bot, passwordFile: pw}}"),
			want: []string{`config.yaml:2: upstreams[0].auth: the proxy would hand its upstream credentials (for r.example, docker.io) to anyone`},
		},
		{
			name: "client certificates required",
			yaml: y(tlsCA, "upstreams:", withAuth),
		},
		{
			name: "anonymous clients allowed",
			yaml: y("allowAnonymousClients: true", "upstreams:", withAuth),
		},
		{
			name: "anonymous clients allowed with TLS",
			yaml: y(tlsNoCA, "allowAnonymousClients: true", "upstreams:", withAuth),
		},
		{
			name: "no auth",
			yaml: y("upstreams:", noAuth),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, dir, err := parseFixture(t, tc.yaml)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				if c == nil {
					t.Fatal("got a nil Config")
				}
				return
			}
			wantErrors(t, err, dir, tc.want)
		})
	}
}

// TestUpstreamNames checks registry normalisation and default endpoints.
func TestUpstreamNames(t *testing.T) {
	tests := []struct {
		name         string
		registry     string
		endpoint     string // "" for none
		wantRegistry string
		wantEndpoint string
	}{
		{"docker.io", "docker.io", "", "docker.io", "https://registry-1.docker.io"},
		{"index.docker.io", "index.docker.io", "", "docker.io", "https://registry-1.docker.io"},
		{"registry-1.docker.io", "registry-1.docker.io", "", "docker.io", "https://registry-1.docker.io"},
		{"Docker Hub in capitals", "Index.Docker.IO", "", "docker.io", "https://registry-1.docker.io"},
		{"Docker Hub through a mirror", "docker.io", "https://hub-mirror.internal", "docker.io", "https://hub-mirror.internal"},
		{"plain host", "ghcr.io", "", "ghcr.io", "https://ghcr.io"},
		{"host and port", "registry.example:5000", "", "registry.example:5000", "https://registry.example:5000"},
		{"capitals", "Registry.Example", "", "registry.example", "https://registry.example"},
		{"localhost", "localhost:5000", "", "localhost:5000", "https://localhost:5000"},
		{"IPv4", "10.0.0.7:5000", "", "10.0.0.7:5000", "https://10.0.0.7:5000"},
		{"IPv6", "[fd00::7]:5000", "", "[fd00::7]:5000", "https://[fd00::7]:5000"},
		{"endpoint normalised", "r.example", "HTTPS://Mirror.Internal:5000/", "r.example", "https://mirror.internal:5000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := y("upstreams:", "  - registry: '"+tc.registry+"'")
			if tc.endpoint != "" {
				src += y("    endpoint: '" + tc.endpoint + "'")
			}
			src += y("defaultRegistry: '" + tc.registry + "'")
			c, _, err := parseFixture(t, src)
			if err != nil {
				t.Fatal(err)
			}
			u := c.Upstreams[0]
			if u.Registry != tc.wantRegistry {
				t.Errorf("Registry = %q, want %q", u.Registry, tc.wantRegistry)
			}
			if c.DefaultRegistry != tc.wantRegistry {
				t.Errorf("DefaultRegistry = %q, want %q", c.DefaultRegistry, tc.wantRegistry)
			}
			if got := u.Endpoint.String(); got != tc.wantEndpoint {
				t.Errorf("Endpoint = %q, want %q", got, tc.wantEndpoint)
			}
		})
	}
}

// TestDefaultRegistryAlias checks that defaultRegistry may use another of
// Docker Hub's names than its upstream does.
func TestDefaultRegistryAlias(t *testing.T) {
	c, _, err := parseFixture(t, y("upstreams: [{registry: index.docker.io}]", "defaultRegistry: registry-1.docker.io"))
	if err != nil {
		t.Fatal(err)
	}
	if c.DefaultRegistry != "docker.io" {
		t.Errorf("DefaultRegistry = %q, want %q", c.DefaultRegistry, "docker.io")
	}
}

func TestInsecureEndpoints(t *testing.T) {
	tests := []struct {
		name     string
		endpoint string
		insecure bool
	}{
		{"http with insecure", "http://mirror.internal:5000", true},
		{"https with insecure skips verification", "https://mirror.internal:5000", true},
		{"https", "https://mirror.internal:5000", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := y("upstreams:", "  - registry: r.example", "    endpoint: "+tc.endpoint)
			if tc.insecure {
				src += y("    insecure: true")
			}
			c, _, err := parseFixture(t, src)
			if err != nil {
				t.Fatal(err)
			}
			if u := c.Upstreams[0]; u.Insecure != tc.insecure || u.Endpoint.String() != tc.endpoint {
				t.Errorf("got insecure %v endpoint %v, want %v %v", u.Insecure, u.Endpoint, tc.insecure, tc.endpoint)
			}
		})
	}
}

func TestListenSharedPortZero(t *testing.T) {
	// Port 0 asks the system for a free port, different for each listener.
	_, _, err := parseFixture(t, y("upstreams: [{registry: r.example}]", "listen: 127.0.0.1:0", "adminListen: 127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
}

// TestVerificationChoice: a config names the policy to enforce or says
// "unverified: true"; neither (a forgotten policyFile, which used to serve
// everything unverified) and both are errors that name the field and line.
func TestVerificationChoice(t *testing.T) {
	const up = "upstreams: [{registry: r.example}]"
	tests := []struct {
		name       string
		yaml       string
		want       []string // problems; none: the config loads
		unverified bool
	}{
		{
			name: "neither",
			yaml: y("# no policy", up),
			want: []string{`config.yaml:2: missing field "policyFile": without a policy no signature is verified; ` +
				`set policyFile to the policy to enforce (see deploy/policy-example.yaml), ` +
				`or set "unverified: true" to run a plain mirror that serves every image unverified`},
		},
		{
			name: "unverified false",
			yaml: y(up, "unverified: false"),
			want: []string{`config.yaml:1: missing field "policyFile"`},
		},
		{
			name: "both",
			yaml: y(up, "policyFile: policy.yaml", "unverified: true"),
			want: []string{`config.yaml:3: unverified: "unverified: true" contradicts policyFile (line 2), which enforces a policy; remove one of them`},
		},
		{
			name: "empty policyFile is reported once",
			yaml: y(up, `policyFile: ""`),
			want: []string{`config.yaml:2: policyFile: must not be empty`},
		},
		{
			name: "policyFile",
			yaml: y(up, "policyFile: policy.yaml"),
		},
		{
			name:       "unverified",
			yaml:       y(up, "unverified: true"),
			unverified: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := fixture(t)
			c, err := Parse([]byte(tc.yaml), "config.yaml", dir)
			if len(tc.want) > 0 {
				wantErrors(t, err, dir, tc.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Unverified != tc.unverified || (c.PolicyFile == "") != tc.unverified {
				t.Errorf("Unverified = %v, PolicyFile = %q; want unverified %v", c.Unverified, c.PolicyFile, tc.unverified)
			}
		})
	}
}
