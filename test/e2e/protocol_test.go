//go:build e2e

package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Proxy behaviour no client above exercises: routing errors, refused writes,
// and the OCI error body.

func TestProtocolEdges(t *testing.T) {
	e := setup(t)
	e.needProxy(t)
	app := e.fixture(t, appImage)
	client := &http.Client{Timeout: 30 * time.Second}

	for _, tc := range []struct {
		Description string
		Method      string
		Path        string
		Code        int
		ErrCode     string // OCI error code in the body; "" for success
		Digest      string // Docker-Content-Digest on success
	}{
		{
			Description: "ns names the registry",
			Method:      http.MethodGet, Path: "/v2/acme/app/manifests/v1?ns=registry.example",
			Code: http.StatusOK, Digest: app.digest.String(),
		},
		{
			Description: "HEAD by ns",
			Method:      http.MethodHead, Path: "/v2/acme/app/manifests/v1?ns=registry.example",
			Code: http.StatusOK, Digest: app.digest.String(),
		},
		{
			Description: "ns of an unconfigured registry",
			Method:      http.MethodGet, Path: "/v2/acme/app/manifests/v1?ns=other.example",
			Code: http.StatusNotFound, ErrCode: "NAME_UNKNOWN",
		},
		{
			Description: "unknown tag",
			Method:      http.MethodGet, Path: "/v2/registry.example/acme/app/manifests/nope",
			Code: http.StatusNotFound, ErrCode: "MANIFEST_UNKNOWN",
		},
		{
			Description: "manifest PUT refused",
			Method:      http.MethodPut, Path: "/v2/registry.example/acme/app/manifests/v2",
			Code: http.StatusMethodNotAllowed, ErrCode: "UNSUPPORTED",
		},
		{
			Description: "blob upload refused",
			Method:      http.MethodPost, Path: "/v2/registry.example/acme/app/blobs/uploads/",
			Code: http.StatusMethodNotAllowed, ErrCode: "UNSUPPORTED",
		},
		{
			Description: "DELETE refused",
			Method:      http.MethodDelete, Path: "/v2/registry.example/acme/app/manifests/" + app.digest.String(),
			Code: http.StatusMethodNotAllowed, ErrCode: "UNSUPPORTED",
		},
	} {
		t.Run(tc.Description, func(t *testing.T) {
			var body io.Reader
			if tc.Method == http.MethodPut {
				body = strings.NewReader(string(app.raw))
			}
			req, err := http.NewRequestWithContext(t.Context(), tc.Method, "http://"+e.addr+tc.Path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Accept", string(app.mediaType))
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.Code {
				t.Fatalf("%s %s: %s, want %d\n%s", tc.Method, tc.Path, resp.Status, tc.Code, b)
			}
			if tc.Digest != "" {
				if got := resp.Header.Get("Docker-Content-Digest"); got != tc.Digest {
					t.Errorf("Docker-Content-Digest = %q, want %s", got, tc.Digest)
				}
			}
			if tc.ErrCode == "" || tc.Method == http.MethodHead {
				return
			}
			var oe struct {
				Errors []struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"errors"`
			}
			if err := json.Unmarshal(b, &oe); err != nil || len(oe.Errors) == 0 {
				t.Fatalf("body is not an OCI error (%v):\n%s", err, b)
			}
			if oe.Errors[0].Code != tc.ErrCode {
				t.Errorf("error code %q, want %q (message %q)", oe.Errors[0].Code, tc.ErrCode, oe.Errors[0].Message)
			}
		})
	}
}
