package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadPassword(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    string
		wantErr string
	}{
		{name: "newline", content: "s3cret\n", want: "s3cret"},
		{name: "CRLF", content: "s3cret\r\n", want: "s3cret"},
		{name: "no newline", content: "s3cret", want: "s3cret"},
		{name: "only one newline trimmed", content: "s3cret\n\n", want: "s3cret\n"},
		{name: "lone CR kept", content: "s3cret\r", want: "s3cret\r"},
		{name: "spaces kept", content: " s3 cret \n", want: " s3 cret "},
		{name: "empty", content: "", wantErr: "is empty"},
		{name: "only a newline", content: "\n", wantErr: "is empty"},
		{name: "only CRLF", content: "\r\n", wantErr: "is empty"},
		{name: "too big", content: strings.Repeat("x", maxPasswordBytes+1), wantErr: "is larger than 65536 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "pw")
			writeFile(t, p, tc.content)
			got, err := readPassword(p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("got %q, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestPasswordThroughParse checks that Parse reads the password and trims
// it like readPassword.
func TestPasswordThroughParse(t *testing.T) {
	dir := fixture(t)
	writeFile(t, filepath.Join(dir, "crlf"), "pa ss\r\n")
	c, err := Parse([]byte(y(
		"allowAnonymousClients: true",
		"upstreams:",
		"  - {registry: r.example, auth: {username: bot, passwordFile: crlf}}",
		"  - {registry: q.example}",
		"unverified: true",
	)), "config.yaml", dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Upstreams[0].Password(); got != "pa ss" {
		t.Errorf("Password() = %q, want %q", got, "pa ss")
	}
	if got := c.Upstreams[1].Password(); got != "" {
		t.Errorf("Password() without auth = %q, want \"\"", got)
	}
}

func TestAbsolute(t *testing.T) {
	tests := []struct {
		name, dir, p, want string
	}{
		{"relative", "/etc/portcullis", "tls.crt", "/etc/portcullis/tls.crt"},
		{"relative with dots", "/etc/portcullis", "../secrets/pw", "/etc/secrets/pw"},
		{"absolute kept", "/etc/portcullis", "/run/secrets/pw", "/run/secrets/pw"},
		{"absolute cleaned", "/etc/portcullis", "/run//secrets/./pw", "/run/secrets/pw"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := absolute(filepath.FromSlash(tc.dir), filepath.FromSlash(tc.p)); got != filepath.FromSlash(tc.want) {
				t.Errorf("absolute(%q, %q) = %q, want %q", tc.dir, tc.p, got, tc.want)
			}
		})
	}
}

func TestCheckReadable(t *testing.T) {
	dir := fixture(t)
	unreadable := filepath.Join(dir, "unreadable")
	writeFile(t, unreadable, "x")
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		wantErr string
	}{
		{"regular file", filepath.Join(dir, "ca.pem"), ""},
		{"missing", filepath.Join(dir, "nope"), "no such file or directory"},
		{"directory", filepath.Join(dir, "subdir"), "is not a regular file"},
		{"device", os.DevNull, "is not a regular file"},
		{"unreadable", unreadable, "permission denied"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "unreadable" && os.Geteuid() == 0 {
				t.Skip("root can read any file")
			}
			err := checkReadable(tc.path)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("got %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
