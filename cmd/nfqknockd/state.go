package main

// The used one-time sequences in a file (--state-dir): the table's set
// spent keeps them over a restart, the file over a stop and a start, and
// over a reboot.

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/nfqknockd/nfqknockd/cmd/internal/privdir"
	"github.com/nfqknockd/nfqknockd/cmd/internal/spentfile"
	"github.com/nfqknockd/nfqknockd/knock"
	"github.com/nfqknockd/nfqknockd/nft"
)

// checkStateDir checks, with --one-time, that --state-dir is a directory
// that only root or the daemon's user can write in (made when missing),
// and that the daemon can create a file there: a failed start, exit 2,
// before the lock and the kernel. It sets spentPath.
func (d *service) checkStateDir() error {
	dir := d.cfg.StateDir
	if !d.cfg.keepsSpent() || dir == "" {
		return nil
	}
	if err := privdir.Ensure(dir); err != nil {
		return fail(2, "--state-dir %s: %v", style.Quote(dir), err)
	}
	path := spentfile.Path(dir, d.cfg.Table)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fail(2, "--state-dir %s: cannot create a file in it: %v", style.Quote(dir), err)
	}
	f.Close()
	os.Remove(f.Name())
	d.spentPath = path
	return nil
}

// seedSpent marks used the one-time sequences that the table's set spent
// holds (those the daemon before this one used, over a restart) and those
// of the file (over a stop and a start, or a reboot), so that a knock of
// one is a replay; it adds to the table those of the file it lacks, and
// writes the file with them all. A table or a file it cannot read leaves
// theirs unknown: logged, and the daemon goes on.
func (d *service) seedSpent() {
	now := time.Now()
	if d.clock != nil {
		now = d.clock()
	}
	keys, err := d.rules.Spent()
	if err != nil {
		d.log.Error("could not read the used one-time sequences from the table: those used before this start may open once more in their period", "err", err)
	}
	var file []spentfile.Entry
	if d.spentPath != "" {
		file, err = spentfile.Read(d.spentPath, now)
		if err != nil {
			d.log.Error("state file ignored: the one-time sequences it held may open once more in their period", "file", d.spentPath, "err", err)
		}
	}
	d.spent.Seed(tableSpent(keys, now), now)
	n := d.spent.Seed(convertSpent[knock.Spent](file), now)
	inTable := make(map[[16]byte]bool, len(keys))
	for _, k := range keys {
		inTable[k.Key] = true
	}
	for _, e := range file {
		if inTable[e.Key] {
			continue
		}
		if err := d.rules.Spend(e.Key, e.Until.Sub(now)); err != nil {
			d.log.Error("could not put the used one-time sequences of the state file into the table: a restart still refuses them, from the file", "err", err)
			break
		}
	}
	if d.spentPath != "" {
		d.log.Info(d.cfg.spentWhat()+" used before this start are refused", "kept", len(keys), "from_file", len(file), "used", n)
		d.writeSpentFile()
		return
	}
	d.log.Info(d.cfg.spentWhat()+" used before this start are refused", "kept", len(keys), "used", n)
}

// saveSpentSoon asks keepSpentFile to write the file; it never waits.
func (d *service) saveSpentSoon() {
	if d.spentPath == "" {
		return
	}
	select {
	case d.spentDirty <- struct{}{}:
	default: // a write is due already, and takes this sequence too
	}
}

// keepSpentFile writes the file each time saveSpentSoon asks, until ctx is
// done; finish writes it a last time.
func (d *service) keepSpentFile(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.spentDirty:
			d.writeSpentFile()
		}
	}
}

// writeSpentFile replaces the file with the used sequences, atomically; a
// failure is logged (the table still keeps them over a restart).
func (d *service) writeSpentFile() {
	if d.spentPath == "" || d.spent == nil {
		return
	}
	now := time.Now()
	if d.clock != nil {
		now = d.clock()
	}
	if err := spentfile.Write(d.spentPath, convertSpent[spentfile.Entry](d.spent.Entries()), now); err != nil {
		d.log.Error("could not write the used one-time sequences to the state file: a stop or a reboot in their period forgets them", "err", err)
	}
}

// tableSpent returns the keys that the table's set spent holds as the
// ledger's used sequences, each used until now plus its remaining life.
func tableSpent(keys []nft.SpentKey, now time.Time) []knock.Spent {
	out := make([]knock.Spent, len(keys))
	for i, k := range keys {
		out[i] = knock.Spent{Key: k.Key, Until: now.Add(k.Expires)}
	}
	return out
}

// spentRecord is a used one-time sequence as the ledger holds it
// (knock.Spent) and as the state file does (spentfile.Entry).
type spentRecord interface {
	~struct {
		Key   [16]byte
		Until time.Time
	}
}

// convertSpent returns the used sequences of in as Out: the state file's
// entries as the ledger's, and back.
func convertSpent[Out, In spentRecord](in []In) []Out {
	out := make([]Out, len(in))
	for i, e := range in {
		out[i] = Out(e)
	}
	return out
}
