package main

// The start of the daemon: privileges, the table's lock, the queues and the
// first transaction, in that order, so that whatever fails leaves nothing
// behind (start); and the start line, which says how the kernel keeps the
// table (program, keptBy).

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nfqknockd/nfqknockd/knock"
	"github.com/nfqknockd/nfqknockd/nft"
	"github.com/nfqknockd/nfqknockd/queue"
)

// Test hooks that make the daemon use the table as on an older kernel.
// noOwnerEnv, set to 1, keeps the table without the ownership flags, as
// before 5.12: the daemon then watches the table and puts it back.
// noPersistEnv, set to 1, leaves out the flag persist, as from 5.12 to
// 6.8: an owned table and a backup table.
const (
	noOwnerEnv   = "NFQKNOCKD_TEST_NO_OWNER"
	noPersistEnv = "NFQKNOCKD_TEST_NO_PERSIST"
)

// start checks the privileges, takes the table's lock, checks whose the
// table is, binds the queues and programs the table, in that order:
// whatever fails leaves nothing behind.
func (d *service) start() error {
	guard, ferr := d.cfg.checkGuard()
	if ferr != nil {
		return ferr
	}
	if err := dropPrivileges(); err != nil {
		return err
	}
	if err := d.checkMetricsDir(); err != nil {
		return err
	}
	if err := d.checkStateDir(); err != nil {
		return err
	}
	if err := d.lockTable(); err != nil {
		return err
	}
	rules, err := nft.Dial(0)
	if err != nil {
		d.release()
		return err
	}
	d.rules = rules
	// A table that is not ours stops the start here, before any queue.
	if err := d.tableError(d.rules.Check(d.cfg.Table)); err != nil {
		d.release()
		return err
	}
	if err := d.openQueues(); err != nil {
		d.release()
		return err
	}
	d.spec = nft.Spec{
		Table: d.cfg.Table, Start: d.cfg.Params.Range.Start, End: d.cfg.Params.Range.End, Guard: guard,
		QueueNum: d.cfg.Queue, QueueTotal: d.cfg.Queues, Allow: d.cfg.Allow, NoOwner: os.Getenv(noOwnerEnv) == "1",
		NoPersist: os.Getenv(noPersistEnv) == "1",
		QueueAll:  d.cfg.QueueAll, KnockTimeout: d.cfg.Timeout + knockTimeoutMargin,
		SPA: d.cfg.SPA.Ports, SPAOnly: d.cfg.SPA.Only,
	}
	d.spec.First, _ = d.firstPorts(time.Now())
	if len(d.cfg.SPA.Ports) > 0 {
		d.spec.SPAKeys = d.spaKeyIDs(time.Now())
	}
	ct, err := nft.ConntrackInUse()
	if err != nil {
		d.log.Warn("conntrack: cannot tell whether it is in use; the guard drops new connections' SYNs only", "err", err)
	}
	d.spec.Conntrack = ct
	if err := d.program(); err != nil {
		d.release()
		return err
	}
	return nil
}

// dropPrivileges checks for CAP_NET_ADMIN and keeps it alone: a daemon
// that cannot drop root's other capabilities refuses to run.
func dropPrivileges() error {
	ok, err := hasCapNetAdmin()
	if err != nil {
		return fail(1, "%v", err)
	}
	if !ok {
		return fail(1, "CAP_NET_ADMIN is missing: run as root or grant the capability (it binds NFQUEUE and programs nf_tables)")
	}
	if err := dropCapabilities(); err != nil {
		return fail(1, "refusing to run with capabilities it does not need: %v", err)
	}
	return nil
}

// openQueues binds the queues, one shard each. A queue bound by another
// process fails here.
func (d *service) openQueues() error {
	for i := uint16(0); i < d.cfg.Queues; i++ {
		num := d.cfg.Queue + i
		q, err := queue.Open(queue.Config{Num: num, Total: d.cfg.Queues, MaxLen: d.cfg.MaxQueueLen, Logger: d.log})
		if err != nil {
			return fail(1, "-q %d: %v", num, err)
		}
		tc := d.cfg.trackerConfig()
		tc.MaxSources = maxPerShard(d.cfg.MaxSources, int(d.cfg.Queues))
		tr, err := knock.NewTracker(tc)
		if err != nil {
			q.Close()
			return fail(2, "%v", err)
		}
		tr.Prepare(time.Now())
		d.shards = append(d.shards, d.newShard(q, tr))
	}
	return nil
}

// newShard returns a shard of the daemon reading q (nil in unit tests).
func (d *service) newShard(q *queue.Queue, tr *knock.Tracker) *shard {
	if d.cfg.keepsSpent() && d.spent == nil {
		d.spent = knock.NewLedger(d.cfg.Params.Period, d.cfg.Params.Grace)
		d.spentDirty = make(chan struct{}, 1)
	}
	s := &shard{
		q: q, tracker: tr, m: &d.metrics, log: d.log, ttl: d.cfg.OpenTimeout, verbose: d.cfg.Verbose,
		users: d.secrets().users, guard: d.cfg.guardPorts(), spent: d.spent, oneTime: d.cfg.OneTime, spentSaved: d.saveSpentSoon,
		hooks: d.hooks, spa: newSPAGate(d.cfg, d.secrets().users, &d.spaCounts),
	}
	if q != nil {
		s.now = q.ReadAt
	}
	return s
}

// program applies the table (or takes over ours, left by the daemon before)
// and logs how it started.
func (d *service) program() error {
	res, err := d.rules.Apply(d.spec)
	if err := d.tableError(err); err != nil {
		return err
	}
	d.gen, d.queueVariant = res.Gen, res.Queue.String()
	for _, s := range d.shards {
		s.rules = d.rules
	}
	kernel := []any{
		"table", "inet " + d.cfg.Table,
		"took_over", res.TookOver, "opened_kept", res.Carried,
		"table_flags", res.Gen.Flags(),
		"conntrack", d.spec.Conntrack,
		"kept_by", keptBy(res.Gen, d.spec),
		"queue", fmt.Sprintf("num %d total %d", d.cfg.Queue, d.cfg.Queues),
		"queue_variant", res.Queue.String(),
	}
	d.log.Info("started", append(kernel, d.settings(d.spec.Guard)...)...)
	d.warnSecrets()
	if d.spent != nil {
		d.seedSpent()
	}
	if res.Carried > 0 {
		d.closeUnlisted() // what the daemon before opened for users no longer listed
	}
	d.warnOpenPorts()
	settleMemory()
	return nil
}

// settings are the start line's attributes that the command line and the
// files decide, guard being the ports guarded; the rest of the line is what
// the kernel said.
func (d *service) settings(guard []uint16) []any {
	return []any{
		"range", fmt.Sprintf("%d-%d", d.cfg.Params.Range.Start, d.cfg.Params.Range.End),
		"guard", portList(guard),
		"allow", prefixList(d.cfg),
		"digest", d.cfg.Params.Digest.String(),
		"period", d.cfg.Params.Period,
		"one_time", d.cfg.OneTime,
		"spa", spaSetting(d.cfg),
		"open_timeout", ttlString(d.cfg.OpenTimeout),
		"max_sources", d.cfg.MaxSources,
		"secrets", d.secrets().from(),
	}
}

// warnSecrets logs the warnings about the secrets in force and the knock
// range (config.startWarnings), at start and after a reload.
func (d *service) warnSecrets() {
	for _, w := range d.cfg.startWarnings(d.secrets()) {
		d.log.Warn(w)
	}
}

// tableError turns an error of Check or Apply into the line to print.
func (d *service) tableError(err error) error {
	var held *nft.HeldError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, nft.ErrNotOurs):
		return fail(1, "--table %s: table inet %s exists and is not nfqknockd's: it is left untouched; give another --table", d.cfg.Table, d.cfg.Table)
	case errors.As(err, &held):
		return fail(1, "--table %s: %v", d.cfg.Table, held)
	}
	return fail(1, "program table inet %s: %v", d.cfg.Table, err)
}

// release lets go of what start took, leaving the table as it is.
func (d *service) release() {
	for _, s := range d.shards {
		if s.q == nil {
			continue
		}
		if err := s.q.Close(); err != nil {
			d.log.Error("close queue", "err", err)
		}
	}
	d.shards = nil
	if d.rules != nil {
		if err := d.rules.Close(); err != nil {
			d.log.Error("close the nftables socket", "err", err)
		}
	}
	if d.lock != nil {
		d.lock.Unlock()
		d.lock = nil
	}
}

// keptBy says, for the start line, how the kernel generation gen keeps the
// table: what an admin can expect of it.
func keptBy(gen nft.Generation, spec nft.Spec) string {
	s := gen.String()
	if gen == nft.GenOwner {
		s = strings.Replace(s, "a backup table", "the backup table inet "+nft.BackupTable(spec.Table), 1)
	}
	switch {
	case spec.NoOwner:
		s += "; ownership switched off by " + noOwnerEnv
	case spec.NoPersist && gen == nft.GenOwner:
		s += "; persist switched off by " + noPersistEnv
	}
	return s
}
