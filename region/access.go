package region

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/cofferhq/coffer/fsm"
)

// LastAccessedDate (docs/architecture.md, "LastAccessedDate"). AWS shows
// the day of the last read at once, so the first read of a secret version
// on a day records it through Raft before the value is answered; the
// state then shows that day and later reads that day write nothing. So a
// secret costs one log entry per version read per day, however often it
// is read, and the date is on every node as soon as the read returns.
//
// Concurrent first reads of the same version share one write (pending).
// A read served with X-Coffer-Consistency: stale does not wait for the
// leader: it notes the read in memory, and the node sends its notes every
// AccessFlushInterval as RecordAccess commands; a recording that failed is
// noted the same way. Apply moves dates forward, never back, and skips a
// secret already marked for the day, so batches may arrive in any order
// and more than once.

const (
	defaultAccessFlushInterval = 30 * time.Second
	// accessBatch bounds the secrets one RecordAccess carries.
	accessBatch = 500
	dayMillis   = 24 * 60 * 60 * 1000
)

// dayOf is midnight UTC of t's day, in Unix milliseconds.
func dayOf(t time.Time) int64 {
	ms := t.UnixMilli()
	return ms - ((ms%dayMillis)+dayMillis)%dayMillis
}

// accessLog holds the reads not flushed yet: day → ARN → version ids,
// and the recordings of today's first reads.
type accessLog struct {
	mu   sync.Mutex
	days map[int64]map[string]map[string]struct{}
	// recording holds one entry per version this node recorded (or is
	// recording) for recordingDay; a failed recording is removed.
	recording    map[accessKey]*pendingAccess
	recordingDay int64
	// flushing (a one-slot semaphore) serializes flushes, so one that
	// returns nil has seen every read noted before it started applied,
	// including those a concurrent flush had taken.
	flushing chan struct{}
}

type accessKey struct{ arn, versionID string }

// pendingAccess is one RecordAccess in flight: done closes when it is
// applied or has failed.
type pendingAccess struct {
	done chan struct{}
	keys []accessKey
}

// ValueRead is a value read: its secret and version as the state showed
// them.
type ValueRead struct {
	Secret  *fsm.Secret
	Version *fsm.Version
}

// due returns the reads whose day the state does not show yet.
func due(reads []ValueRead, day int64) []accessKey {
	var out []accessKey
	for _, rd := range reads {
		if rd.Secret.LastAccessedDate < day || rd.Version.LastAccessedDate < day {
			k := accessKey{rd.Secret.ARN, rd.Version.VersionID}
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}

// claim splits keys into those this caller records (mine, nil if none)
// and the recordings already under way or done that it waits for.
func (a *accessLog) claim(day int64, keys []accessKey) (mine *pendingAccess, others []*pendingAccess) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.recordingDay != day {
		a.recording, a.recordingDay = map[accessKey]*pendingAccess{}, day
	}
	for _, k := range keys {
		if p, ok := a.recording[k]; ok {
			if !slices.Contains(others, p) {
				others = append(others, p)
			}
			continue
		}
		if mine == nil {
			mine = &pendingAccess{done: make(chan struct{})}
		}
		mine.keys = append(mine.keys, k)
		a.recording[k] = mine
	}
	return mine, others
}

// finish ends a recording; a failed one is forgotten and its reads noted
// for the flusher.
func (a *accessLog) finish(day int64, p *pendingAccess, err error) {
	a.mu.Lock()
	if err != nil {
		for _, k := range p.keys {
			if a.recordingDay == day && a.recording[k] == p {
				delete(a.recording, k)
			}
			a.addLocked(day, k.arn, k.versionID)
		}
	}
	a.mu.Unlock()
	close(p.done)
}

// noteAll notes reads for the next flush.
func (a *accessLog) noteAll(day int64, keys []accessKey) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, k := range keys {
		a.addLocked(day, k.arn, k.versionID)
	}
}

// RecordAccess makes the reads a request served show in LastAccessedDate:
// the versions whose day the state does not show yet are recorded through
// Raft, in one command, before the request is answered (call it once the
// request has read every value it serves). A stale read (the request asked
// for X-Coffer-Consistency: stale) only notes them for the next flush. A
// recording that fails does not fail the read: its reads are noted for the
// next flush.
func (r *Region) RecordAccess(ctx context.Context, stale bool, reads []ValueRead) {
	day := dayOf(r.Now())
	keys := due(reads, day)
	if len(keys) == 0 {
		return
	}
	if stale {
		r.access.noteAll(day, keys)
		return
	}
	mine, others := r.access.claim(day, keys)
	if mine != nil {
		// The flusher's batching turns the reads into commands (one, for
		// the at most 20 secrets a request reads).
		var batch accessLog
		batch.noteAll(day, mine.keys)
		var err error
		for _, c := range batch.take() {
			if err = r.applyAccess(ctx, c); err != nil {
				break
			}
		}
		if err != nil {
			r.logger.Debug("LastAccessedDate not recorded; kept for the next flush", "error", err)
		}
		r.access.finish(day, mine, err)
	}
	for _, p := range others {
		select {
		case <-p.done:
		case <-ctx.Done():
			return
		}
	}
}

func (r *Region) applyAccess(ctx context.Context, c *fsm.RecordAccess) error {
	_, _, err := r.Apply(ctx, fsm.CmdRecordAccess, c)
	return err
}

func (a *accessLog) addLocked(day int64, arn, versionID string) {
	if a.days == nil {
		a.days = map[int64]map[string]map[string]struct{}{}
	}
	secrets := a.days[day]
	if secrets == nil {
		secrets = map[string]map[string]struct{}{}
		a.days[day] = secrets
	}
	versions := secrets[arn]
	if versions == nil {
		versions = map[string]struct{}{}
		secrets[arn] = versions
	}
	versions[versionID] = struct{}{}
}

// take empties the log and returns its content as commands, in a
// deterministic order: days ascending, ARNs and version ids sorted.
func (a *accessLog) take() []*fsm.RecordAccess {
	a.mu.Lock()
	days := a.days
	a.days = nil
	a.mu.Unlock()
	var out []*fsm.RecordAccess
	for _, day := range slicesSortedKeys(days) {
		secrets := days[day]
		var cmd *fsm.RecordAccess
		for _, arn := range slicesSortedKeys(secrets) {
			if cmd == nil || len(cmd.Secrets) == accessBatch {
				cmd = &fsm.RecordAccess{Day: day}
				out = append(out, cmd)
			}
			cmd.Secrets = append(cmd.Secrets, fsm.AccessedSecret{ARN: arn, VersionIDs: slicesSortedKeys(secrets[arn])})
		}
	}
	return out
}

// putBack returns commands that could not be applied to the log, to be
// sent with the next flush.
func (a *accessLog) putBack(cmds []*fsm.RecordAccess) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range cmds {
		for _, s := range c.Secrets {
			for _, v := range s.VersionIDs {
				a.addLocked(c.Day, s.ARN, v)
			}
		}
	}
}

func slicesSortedKeys[K interface{ ~int64 | ~string }, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// FlushAccess sends the reads this node noted to the leader now, and the
// uses of IAM users' access keys it noted (NoteKeyUse, one RecordKeyUse). The
// background flusher calls it every AccessFlushInterval; tests and a
// graceful leave call it directly.
func (r *Region) FlushAccess(ctx context.Context) error {
	select {
	case r.access.flushing <- struct{}{}:
		defer func() { <-r.access.flushing }()
	case <-ctx.Done():
		return ctx.Err()
	}
	cmds := r.access.take()
	for i, c := range cmds {
		if err := r.applyAccess(ctx, c); err != nil {
			r.access.putBack(cmds[i:])
			return err
		}
	}
	// The last use of IAM users' keys travels with the same flush.
	return r.flushKeyUse(ctx)
}

// accessFlusher runs on every node until the region stops.
func (r *Region) accessFlusher() {
	defer r.loops.Done()
	interval := r.cfg.AccessFlushInterval
	if interval <= 0 {
		interval = defaultAccessFlushInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-r.bg.Done():
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(r.bg, interval)
		if err := r.FlushAccess(ctx); err != nil && r.bg.Err() == nil {
			r.logger.Debug("LastAccessedDate batch not sent; kept for the next flush", "error", err)
		}
		cancel()
	}
}
