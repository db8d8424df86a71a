package yamlfile

import (
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ParseDuration parses a Go duration string such as "30s", "10m", "1h30m"
// or "0". Only 0 may leave out the unit: "30" is an error rather than a
// guess at seconds.
func ParseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err == nil {
		return d, nil
	}
	const want = `want a duration such as "30s", "10m" or "1h30m"`
	if s != "" && strings.Trim(s, "0123456789") == "" {
		return 0, fmt.Errorf("invalid duration %s: a number needs a unit (%s)", Quote(s), want)
	}
	return 0, fmt.Errorf("invalid duration %s (%s)", Quote(s), want)
}

// DurationAtLeast decodes a duration of at least least; tooSmall says what
// is wrong with a smaller one ("must not be negative").
func DurationAtLeast(p *time.Duration, least time.Duration, tooSmall string) DecodeFunc {
	return func(d *Decoder, path string, n *yaml.Node) {
		if n.Kind != yaml.ScalarNode || IsNull(n) {
			d.ErrorAt(n.Line, path, "want a duration such as \"30s\", got %s", Describe(n))
			return
		}
		v, err := ParseDuration(n.Value)
		if err != nil {
			d.ErrorAt(n.Line, path, "%v", err)
			return
		}
		if v < least {
			d.ErrorAt(n.Line, path, "%s, got %s", tooSmall, Quote(n.Value))
			return
		}
		*p = v
	}
}
