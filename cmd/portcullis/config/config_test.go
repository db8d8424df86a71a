package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestPasswordNotPrinted checks that the password does not leak through
// fmt, encoding/json or log/slog.
func TestPasswordNotPrinted(t *testing.T) {
	c, _, err := parseFixture(t, y(
		"allowAnonymousClients: true",
		"upstreams: [{registry: r.example, auth: {username: bot, passwordFile: pw}}]",
	))
	if err != nil {
		t.Fatal(err)
	}
	if c.Upstreams[0].Password() != "s3cret" {
		t.Fatalf("Password() = %q, want %q", c.Upstreams[0].Password(), "s3cret")
	}
	u := c.Upstreams[0]
	values := map[string]any{"Config": c, "Upstream": u, "*Auth": u.Auth, "Auth": *u.Auth}
	for name, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
			t.Run(name+" "+verb, func(t *testing.T) {
				if got := fmt.Sprintf(verb, v); strings.Contains(got, "s3cret") || strings.Contains(got, fmt.Sprintf("%x", "s3cret")) {
					t.Errorf("Sprintf(%q) = %s, which holds the password", verb, got)
				}
			})
		}
		t.Run(name+" json", func(t *testing.T) {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), "s3cret") {
				t.Errorf("json.Marshal = %s, which holds the password", b)
			}
		})
		t.Run(name+" slog", func(t *testing.T) {
			var b strings.Builder
			slog.New(slog.NewTextHandler(&b, nil)).Info("config", "value", v)
			slog.New(slog.NewJSONHandler(&b, nil)).Info("config", "value", v)
			if strings.Contains(b.String(), "s3cret") {
				t.Errorf("slog wrote %s, which holds the password", b.String())
			}
		})
	}
}

func TestAuthString(t *testing.T) {
	a := Auth{Username: "bot", PasswordFile: "/run/secrets/pw", password: "s3cret"}
	if got, want := a.String(), "{Username:bot PasswordFile:/run/secrets/pw}"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
