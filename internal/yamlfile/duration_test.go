package yamlfile

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr string
	}{
		{name: "seconds", in: "30s", want: 30 * time.Second},
		{name: "compound", in: "1h30m", want: 90 * time.Minute},
		{name: "fraction", in: "1.5s", want: 1500 * time.Millisecond},
		{name: "zero", in: "0", want: 0},
		{name: "negative", in: "-1s", want: -time.Second},
		{name: "no unit", in: "30", wantErr: `invalid duration "30": a number needs a unit`},
		{name: "days", in: "1d", wantErr: `invalid duration "1d" (want a duration such as "30s", "10m" or "1h30m")`},
		{name: "empty", in: "", wantErr: `invalid duration ""`},
		{name: "words", in: "soon", wantErr: `invalid duration "soon"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("ParseDuration(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}
