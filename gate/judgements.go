package gate

import (
	"time"

	"strings"
	"sync"

	"github.com/portcullis-dev/portcullis/policy"
)

// judgementPool interns allow judgements, so that the verdict cache holds
// one copy of "allowed by release-key under revision R" however many images
// it applies to. Only allows are interned: they are cached long (verdictTTL)
// and repeat; denials carry per-image reasons and live briefly.
type judgementPool struct {
	mu   sync.Mutex
	rev  string // the revision the pool holds judgements of
	pool map[string]*Judgement
}

// maxJudgements bounds the pool; past it, judgements are cached unshared.
const maxJudgements = 10_000

// intern returns the pooled judgement equal to j, pooling a compact copy
// of j (passed policies without per-authority reasons) if there is none.
func (p *judgementPool) intern(j *Judgement) *Judgement {
	c := compact(j)
	key := judgementKey(c)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rev != c.Revision || p.pool == nil {
		p.rev, p.pool = c.Revision, map[string]*Judgement{} // a new revision: old ones are never used again
	}
	if pooled, ok := p.pool[key]; ok {
		return pooled
	}
	if len(p.pool) < maxJudgements {
		p.pool[key] = c
	}
	return c
}

// compact drops what a cached allow never shows: the reasons of the
// authorities that did not pass within policies that did.
func compact(j *Judgement) *Judgement {
	c := *j
	c.Outcome.ValidUntil = time.Time{} // applied to the Stored's Fresh and Expires; not part of what is shared
	c.Outcome.Policies = make([]policy.PolicyResult, len(j.Outcome.Policies))
	for i, pr := range j.Outcome.Policies {
		if pr.Passed {
			pr.Reasons = nil
		}
		c.Outcome.Policies[i] = pr
	}
	return &c
}

func judgementKey(j *Judgement) string {
	var b strings.Builder
	b.WriteString(j.Revision)
	b.WriteByte(0)
	b.WriteString(string(j.Cause))
	b.WriteByte(0)
	b.WriteString(j.Why)
	b.WriteByte(0)
	b.WriteString(j.Identity)
	for _, pr := range j.Outcome.Policies {
		b.WriteByte(0)
		b.WriteString(pr.Policy)
		b.WriteByte(0)
		b.WriteString(strings.Join(pr.PassedBy, "\x01"))
		b.WriteByte(0)
		b.WriteString(strings.Join(pr.Reasons, "\x01"))
	}
	return b.String()
}

// JudgementPool interns allow judgements for a shared verdict store, which
// decodes a fresh copy of each verdict it learns: pooled, a thousand
// verdicts learned from other replicas hold one judgement, as the
// verdicts this gate decides do. Other judgements are returned as they
// are. Safe for concurrent use.
type JudgementPool struct{ p judgementPool }

// Intern returns the pooled judgement equal to j when j allows, else j.
func (jp *JudgementPool) Intern(j *Judgement) *Judgement {
	if j.Decision != Allow {
		return j
	}
	return jp.p.intern(j)
}
