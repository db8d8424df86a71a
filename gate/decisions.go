package gate

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/portcullis-dev/portcullis/internal/bounded"
	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/policy"
)

// Result is the word for what happened to a request, the same in log
// lines, metric labels and decision records.
type Result string

// Results (a fixed set: a metric label).
const (
	ResultAllow Result = "allow" // served: every matched policy passed
	ResultWarn  Result = "warn"  // served despite a warn-mode policy's violation
	ResultDeny  Result = "deny"  // refused (403)
	ResultError Result = "error" // no decision could be made (503)
)

// Results lists every Result, for pre-initialised metric series.
var Results = []Result{ResultAllow, ResultWarn, ResultDeny, ResultError}

// index numbers the Results (an array index on the hot path).
func (r Result) index() int {
	switch r {
	case ResultAllow:
		return 0
	case ResultWarn:
		return 1
	case ResultDeny:
		return 2
	}
	return 3
}

// resultOf is the Result word of a verdict.
func resultOf(v *Verdict) Result {
	switch {
	case !v.Allowed():
		return ResultDeny
	case v.Outcome.HasWarnings():
		return ResultWarn
	}
	return ResultAllow
}

// Record is one entry of the decision log: a decision the gate made, a
// request served despite a warn-mode violation, a blob refused, or a
// decision that could not be made.
type Record struct {
	Time      time.Time `json:"time"`
	Image     string    `json:"image"` // registry/repository
	Digest    string    `json:"digest,omitempty"`
	Reference string    `json:"reference,omitempty"` // the tag or digest asked for (BlobReference for a blob)
	Client    string    `json:"client,omitempty"`
	RequestID string    `json:"requestId,omitempty"`
	Result    Result    `json:"result"`
	// Policy is the policy the result is counted under: the first failing
	// one, else the first matched one, else a pseudo-policy naming the
	// cause (see policyLabel).
	Policy string `json:"policy,omitempty"`
	// Violations are the failing policies with their reasons (warn-mode
	// ones too).
	Violations []FailureDetail `json:"violations,omitempty"`
	// Identity is who or which key passed.
	Identity string `json:"identity,omitempty"`
	Message  string `json:"message"`
	Revision string `json:"revision,omitempty"`
	// CachedUntil is until when a denial is reused without deciding again.
	CachedUntil time.Time `json:"cachedUntil,omitzero"`
}

// BlobReference is the Reference of a refused blob's record.
const BlobReference = "blob"

// DecisionLog keeps the latest decisions, bounded: a ring of the last n
// records, and a ring a tenth that size of refused blobs (which any
// client can ask for by the thousand: they never push the decisions out).
// It is what `portcullis why` and the admin listener's /decisions read.
// Safe for concurrent use.
type DecisionLog struct {
	mu     sync.Mutex
	main   ring
	blobs  ring
	shared SharedRecords
}

// SharedRecords keeps decision records where every replica reads them
// (package fleet), bounded like the log.
type SharedRecords interface {
	// Share keeps r; it does not block (a record it cannot keep now is
	// dropped and counted).
	Share(r Record)
	// Records returns every replica's records, newest first.
	Records(ctx context.Context) ([]Record, error)
}

// ShareWith makes l keep its records in s too, and answer queries with
// every replica's records from s (its own while s cannot answer). Call it
// before l is used.
func (l *DecisionLog) ShareWith(s SharedRecords) { l.shared = s }

// ring is a fixed array of records, the oldest overwritten first.
type ring struct {
	recs []Record
	next int  // where the next record goes
	full bool // the ring has wrapped
}

func (g *ring) add(r Record) {
	g.recs[g.next] = r
	g.next++
	if g.next == len(g.recs) {
		g.next, g.full = 0, true
	}
}

// each calls fn on every record, newest first, until it returns false.
func (g *ring) each(fn func(*Record) bool) {
	n := g.next
	if g.full {
		n = len(g.recs)
	}
	for i := range n {
		if !fn(&g.recs[(g.next-1-i+len(g.recs))%len(g.recs)]) {
			return
		}
	}
}

// NewDecisionLog returns a log of the last n records (n > 0), plus the
// last n/10 (at least 100) refused blobs.
func NewDecisionLog(n int) *DecisionLog {
	n = max(n, 1)
	return &DecisionLog{main: ring{recs: make([]Record, n)}, blobs: ring{recs: make([]Record, max(n/10, 100))}}
}

// Add records r.
func (l *DecisionLog) Add(r Record) {
	if l.shared != nil {
		l.shared.Share(r)
	}
	l.mu.Lock()
	if r.Reference == BlobReference {
		l.blobs.add(r)
	} else {
		l.main.add(r)
	}
	l.mu.Unlock()
}

// sharedQueryTimeout bounds reading the shared records for a query.
const sharedQueryTimeout = 2 * time.Second

// Filter selects records; zero fields select everything.
type Filter struct {
	Image  *policy.ImagePattern // the record's image matches
	Digest string               // the record is about this digest
	Result Result
	Since  time.Time // recorded at or after
	Limit  int       // at most this many, the newest (0: no limit)
}

func (f Filter) match(r *Record) bool {
	return (f.Image == nil || f.Image.Match(r.Image)) &&
		(f.Digest == "" || r.Digest == f.Digest) &&
		(f.Result == "" || r.Result == f.Result) &&
		!r.Time.Before(f.Since)
}

// Query returns the records f selects, newest first: every replica's
// when the log is shared.
func (l *DecisionLog) Query(f Filter) []Record {
	if l.shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), sharedQueryTimeout)
		recs, err := l.shared.Records(ctx)
		cancel()
		if err == nil {
			out := []Record{}
			for i := range recs {
				if f.match(&recs[i]) {
					out = append(out, recs[i])
					if f.Limit > 0 && len(out) == f.Limit {
						break
					}
				}
			}
			return out
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []Record{}
	for _, g := range []*ring{&l.main, &l.blobs} {
		taken := 0
		g.each(func(r *Record) bool {
			if f.match(r) {
				out = append(out, *r)
				taken++
			}
			return f.Limit <= 0 || taken < f.Limit
		})
	}
	slices.SortStableFunc(out, func(a, b Record) int { return b.Time.Compare(a.Time) })
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out
}

// SummaryRow aggregates the records of one image under one policy.
type SummaryRow struct {
	Image  string    `json:"image"`
	Policy string    `json:"policy"`
	Result Result    `json:"result"`
	Count  int       `json:"count"`
	First  time.Time `json:"first"`
	Last   time.Time `json:"last"`
	// Digests are the distinct digests seen (at most maxSummaryDigests).
	Digests []string `json:"digests"`
	// Reasons are the distinct reasons of the latest record.
	Reasons []string `json:"reasons,omitempty"`
}

// maxSummaryDigests bounds the digests listed per summary row.
const maxSummaryDigests = 10

// Summary aggregates the records f selects by image, policy and result
// (what an admin reads before switching a warn-mode policy to enforce),
// the most frequent first. f.Limit bounds the rows.
func (l *DecisionLog) Summary(f Filter) []SummaryRow {
	limit := f.Limit
	f.Limit = 0
	type key struct {
		image, policy string
		result        Result
	}
	rows := map[key]*SummaryRow{}
	var order []key
	for _, r := range l.Query(f) { // newest first
		for _, pol := range recordPolicies(&r) {
			k := key{r.Image, pol, r.Result}
			row := rows[k]
			if row == nil {
				row = &SummaryRow{Image: r.Image, Policy: pol, Result: r.Result, Last: r.Time, Reasons: reasonsOf(&r, pol)}
				rows[k] = row
				order = append(order, k)
			}
			row.Count++
			row.First = r.Time
			if r.Digest != "" && !slices.Contains(row.Digests, r.Digest) && len(row.Digests) < maxSummaryDigests {
				row.Digests = append(row.Digests, r.Digest)
			}
		}
	}
	out := make([]SummaryRow, 0, len(order))
	for _, k := range order {
		out = append(out, *rows[k])
	}
	slices.SortStableFunc(out, func(a, b SummaryRow) int { return b.Count - a.Count })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// recordPolicies are the policies a record is summarised under: each
// violated one (a warn record names every warn-mode policy it violated),
// else the one it is counted under.
func recordPolicies(r *Record) []string {
	var out []string
	for _, v := range r.Violations {
		if r.Result != ResultWarn || v.Mode == policy.Warn.String() {
			out = append(out, v.Policy)
		}
	}
	if len(out) == 0 {
		out = []string{r.Policy}
	}
	return out
}

func reasonsOf(r *Record, pol string) []string {
	for _, v := range r.Violations {
		if v.Policy == pol {
			return v.Reasons
		}
	}
	return nil
}

// A record's texts are bounded (an upstream's error message may be long,
// and failed decisions are not cached: a record per request), so that the
// log's size is bounded by its entries: each text at most maxRecordText,
// at most maxRecordViolations policies, and their reasons together at
// most maxRecordReasons (the rest counted in one last reason). A record
// is then at most about 4 KiB, and typically a few hundred bytes.
const (
	maxRecordText       = 1 << 10
	maxRecordViolations = 16
	maxRecordReasons    = 2 << 10
)

// truncate bounds a record's text, marking the cut.
func truncate(s string, n int) string {
	if c := bounded.String(s, n); c != s {
		return c + "…"
	}
	return s
}

// boundedViolations is vs within a record's bounds.
func boundedViolations(vs []FailureDetail) []FailureDetail {
	if len(vs) > maxRecordViolations {
		vs = vs[:maxRecordViolations]
	}
	budget := maxRecordReasons
	out := make([]FailureDetail, len(vs))
	for i, v := range vs {
		out[i] = FailureDetail{Policy: truncate(v.Policy, maxRecordText), Mode: v.Mode}
		for j, r := range v.Reasons {
			if budget <= 0 {
				out[i].Reasons = append(out[i].Reasons, fmt.Sprintf("… %d more reasons not recorded", len(v.Reasons)-j))
				break
			}
			r = truncate(r, min(maxRecordText, budget))
			budget -= len(r)
			out[i].Reasons = append(out[i].Reasons, r)
		}
	}
	return out
}

// record adds a record of v, for the request in ctx's oci.Request, to the
// decision log (if the gate keeps one).
func (g *Gate) record(req oci.Request, reference string, v *Verdict, result Result, cachedUntil time.Time) {
	if g.o.decisions == nil {
		return
	}
	r := Record{
		Time: g.o.now(), Image: v.Image, Digest: v.Digest.String(), Reference: reference,
		Client: req.Client, RequestID: req.ID, Result: result, Message: truncate(v.Message(), maxRecordText),
	}
	if v.Judgement != nil {
		r.Policy, r.Identity, r.Revision = policyLabel(v), truncate(v.Identity, maxRecordText), v.Revision
		r.Violations = boundedViolations(v.Detail())
	}
	if result == ResultDeny {
		r.CachedUntil = cachedUntil
	}
	g.o.decisions.Add(r)
}
