package upstream

import (
	"fmt"
	"strconv"
	"strings"
)

// Range is one byte range of a blob, as a client's Range header asks:
// bytes=start-end (end -1: to the end), or a suffix bytes=-n (suffix > 0).
type Range struct {
	start, end, suffix int64
}

// ParseRange reads a single-range Range header. Anything else (absent,
// malformed, several ranges, not bytes) yields nil: RFC 9110 lets a server
// ignore such a Range and send the whole representation.
func ParseRange(h string) *Range {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return nil
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return nil
	}
	if first == "" {
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n <= 0 {
			return nil
		}
		return &Range{suffix: n}
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil || start < 0 {
		return nil
	}
	if last == "" {
		return &Range{start: start, end: -1}
	}
	end, err := strconv.ParseInt(last, 10, 64)
	if err != nil || end < start {
		return nil
	}
	return &Range{start: start, end: end}
}

// Header is the Range header asking for this range.
func (b *Range) Header() string {
	switch {
	case b.suffix > 0:
		return fmt.Sprintf("bytes=-%d", b.suffix)
	case b.end < 0:
		return fmt.Sprintf("bytes=%d-", b.start)
	}
	return fmt.Sprintf("bytes=%d-%d", b.start, b.end)
}

// Resolve turns the range into absolute first and last byte offsets within
// a blob of size bytes; ok is false when nothing of it is satisfiable.
func (b *Range) Resolve(size int64) (first, last int64, ok bool) {
	if b.suffix > 0 {
		first = max(size-b.suffix, 0)
		return first, size - 1, size > 0
	}
	if b.start >= size {
		return 0, 0, false
	}
	last = b.end
	if last < 0 || last >= size {
		last = size - 1
	}
	return b.start, last, true
}

// ParseContentRange reads "bytes first-last/size" (size may be "*").
func ParseContentRange(h string) (first, last, size int64, ok bool) {
	spec, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, 0, 0, false
	}
	span, total, ok := strings.Cut(spec, "/")
	if !ok {
		return 0, 0, 0, false
	}
	a, b, ok := strings.Cut(span, "-")
	if !ok {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	first, err1 = strconv.ParseInt(a, 10, 64)
	last, err2 = strconv.ParseInt(b, 10, 64)
	size = -1
	if total != "*" {
		size, err3 = strconv.ParseInt(total, 10, 64)
	}
	if err1 != nil || err2 != nil || err3 != nil || first < 0 || last < first {
		return 0, 0, 0, false
	}
	return first, last, size, true
}
