package gate

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/portcullis-dev/portcullis/oci"
)

// answered counts the gate's answer to a manifest request judged as an
// image (cache hits too), and logs and records what no decision did: a
// request served from a cached verdict despite a warn-mode violation
// (every such request is logged at WARN and recorded, not only the first),
// and a decision that could not be made.
func (g *Gate) answered(ctx context.Context, req *ManifestRequest, v *Verdict, err error) {
	if err != nil {
		if ctx.Err() != nil {
			return // the client went away: nothing was answered
		}
		rq := oci.RequestFrom(ctx)
		g.metrics.answer(ResultError)
		g.o.logger.Warn("decision failed: no decision, nothing served",
			zap.String("requestId", rq.ID), zap.String("client", rq.Client),
			zap.String("image", req.Repo.String()), zap.String("digest", req.Digest.String()),
			zap.String("reference", req.Reference), zap.String("error", truncate(err.Error(), maxRecordText)))
		failed := &Verdict{Image: req.Repo.String(), Digest: req.Digest, Judgement: &Judgement{
			Decision: Deny, Why: fmt.Sprintf("no decision could be made (nothing served): %v", err)}}
		g.record(rq, req.Reference, failed, ResultError, time.Time{})
		return
	}
	res := resultOf(v)
	g.metrics.answer(res)
	if res == ResultWarn && !v.decided {
		rq := oci.RequestFrom(ctx)
		g.o.logger.Warn("served despite warn-mode policy violations",
			zap.String("requestId", rq.ID), zap.String("client", rq.Client),
			zap.String("image", v.Image), zap.String("digest", v.Digest.String()),
			zap.String("reference", req.Reference), zap.String("result", string(ResultWarn)),
			zap.String("revision", v.Revision), violations(v.Detail()))
		g.record(rq, req.Reference, v, ResultWarn, time.Time{})
	}
}

// violations is the log field of a verdict's failing policies, under one
// fixed key whatever the policies are called: a list of {policy, mode,
// reasons}.
func violations(d []FailureDetail) zap.Field {
	return zap.Array("violations", zapcore.ArrayMarshalerFunc(func(enc zapcore.ArrayEncoder) error {
		for _, f := range d {
			if err := enc.AppendObject(zapcore.ObjectMarshalerFunc(func(o zapcore.ObjectEncoder) error {
				o.AddString("policy", f.Policy)
				o.AddString("mode", f.Mode)
				return o.AddArray("reasons", zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
					for _, r := range f.Reasons {
						a.AppendString(r)
					}
					return nil
				}))
			})); err != nil {
				return err
			}
		}
		return nil
	}))
}
