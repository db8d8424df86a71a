// Package bounded cuts text to a size, for what is logged or kept from
// input the proxy does not control (methods, upstream error messages).
package bounded

import "unicode/utf8"

// String is s cut to at most n bytes, on a rune boundary.
func String(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
