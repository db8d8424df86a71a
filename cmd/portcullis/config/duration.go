package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/yamlfile"
)

// parseDuration parses a Go duration string such as "30s", "10m", "1h30m"
// or "0". Only 0 may leave out the unit: "30" is an error rather than a
// guess at seconds.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err == nil {
		return d, nil
	}
	const want = `want a duration such as "30s", "10m" or "1h30m"`
	if s != "" && strings.Trim(s, "0123456789") == "" {
		return 0, fmt.Errorf("invalid duration %s: a number needs a unit (%s)", yamlfile.Quote(s), want)
	}
	return 0, fmt.Errorf("invalid duration %s (%s)", yamlfile.Quote(s), want)
}
