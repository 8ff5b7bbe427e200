package main

import (
	"context"
	"time"

	"github.com/nfqknockd/nfqknockd/knock"
	"github.com/nfqknockd/nfqknockd/nft"
)

// knockTimeoutMargin is how much longer than --timeout the kernel keeps
// queueing a knocking source after its last knock.
const knockTimeoutMargin = 2 * time.Second

// firstLead is how long before the next period's sequences begin to be
// accepted the daemon gives their first ports to the kernel, and
// firstMargin how long after a sequence's end its first port stays: the
// kernel's set is a little wider than what the tracker accepts, never
// narrower.
const (
	firstLead   = time.Second
	firstMargin = time.Second
)

// firstPorts returns the first ports the kernel filter needs from now
// until firstLead later, for the set first: those with which a knock then
// may begin an accepted sequence (see knock.Params.FirstPorts), each until
// its sequence's acceptance ends plus firstMargin, and when to call again:
// firstLead before the next period's ports join, so that they join early.
func (d *service) firstPorts(now time.Time) ([]nft.FirstPort, time.Time) {
	p := d.cfg.Params
	ports, next := knock.UsersFirstPorts(p, d.secrets().users, now, now.Add(firstLead), p.Lead(d.cfg.Timeout))
	out := make([]nft.FirstPort, len(ports))
	for i, f := range ports {
		out[i] = nft.FirstPort{Port: f.Port, Timeout: f.Until.Sub(now) + firstMargin}
	}
	return out, next.Add(-firstLead)
}

// keepFirstPorts renews the set first at each change until ctx is done.
func (d *service) keepFirstPorts(ctx context.Context, next time.Time) {
	renewUntilDone(ctx, time.Until(next), func() time.Duration {
		ports, at := d.firstPorts(time.Now())
		if err := d.rules.SetFirst(ports); err != nil {
			d.log.Error("renew the first ports of the kernel filter", "err", err)
			return retryRenewal
		}
		return time.Until(at)
	})
}

// retryRenewal is how soon a renewal of the kernel filter that failed is
// tried again.
const retryRenewal = time.Second

// renewUntilDone calls renew after first, and again after what it returns,
// until ctx is done: the loop of the kernel filter's renewals.
func renewUntilDone(ctx context.Context, first time.Duration, renew func() time.Duration) {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(renew())
	}
}
