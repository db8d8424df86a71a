package fleet

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/portcullis-dev/portcullis/gate"
)

// sharedDecisions is the decision log every replica writes and reads: two
// capped Redis lists (decisions, and refused blobs at a tenth the size,
// as in gate.DecisionLog), each record sealed.
type sharedDecisions struct {
	s       *Store
	entries int64
	queue   chan gate.Record
}

// recordQueue bounds the records waiting to be written.
const recordQueue = 1024

func (d *sharedDecisions) key(blob bool) string {
	if blob {
		return d.s.prefix + "decisions/blobs"
	}
	return d.s.prefix + "decisions"
}

func (d *sharedDecisions) size(blob bool) int64 {
	if blob {
		return max(d.entries/10, 100)
	}
	return d.entries
}

// Share implements gate.SharedRecords.
func (d *sharedDecisions) Share(r gate.Record) {
	select {
	case d.queue <- r:
	default:
		d.s.m.errors.WithLabelValues(opRecord).Inc()
	}
}

// run writes queued records until ctx ends.
func (d *sharedDecisions) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-d.queue:
			b, err := json.Marshal(r)
			if err != nil {
				continue
			}
			blob := r.Reference == gate.BlobReference
			k := d.key(blob)
			wctx, cancel := context.WithTimeout(ctx, d.s.timeout)
			_, err = d.s.rdb.Pipelined(wctx, func(p redis.Pipeliner) error {
				p.LPush(wctx, k, d.s.seal.Seal(k, b))
				p.LTrim(wctx, k, 0, d.size(blob)-1)
				return nil
			})
			cancel()
			if err != nil {
				d.s.failed(opRecord, err)
			}
		}
	}
}

// Records implements gate.SharedRecords.
func (d *sharedDecisions) Records(ctx context.Context) ([]gate.Record, error) {
	var out []gate.Record
	for _, blob := range []bool{false, true} {
		k := d.key(blob)
		vals, err := d.s.rdb.LRange(ctx, k, 0, d.size(blob)-1).Result()
		if err != nil {
			d.s.failed(opQuery, err)
			return nil, err
		}
		for _, v := range vals {
			payload, err := d.s.seal.Open(k, []byte(v))
			var r gate.Record
			if err != nil || json.Unmarshal(payload, &r) != nil {
				d.s.m.rejected.WithLabelValues(rejectSeal).Inc()
				continue
			}
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b gate.Record) int { return b.Time.Compare(a.Time) })
	return out, nil
}

// Decisions is the shared decision log's store, for
// gate.DecisionLog.ShareWith (nil when the Store shares none).
func (s *Store) Decisions() gate.SharedRecords {
	if s.decisions == nil {
		return nil
	}
	return s.decisions
}
