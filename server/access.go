package server

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/cofferhq/coffer/fsm"
)

// LastAccessedDate (docs/architecture.md, "LastAccessedDate"): a read never
// writes. The node that serves a value notes "secret S, version V, read on
// day D" in memory, only when its state does not already show D for them.
// Every AccessFlushInterval the node sends what it noted as RecordAccess
// commands, which go to the leader like any write; Apply moves the dates
// forward, never back, and skips a secret already marked for that day. So
// a secret costs at most one log entry per node per day however often it
// is read, and a lost batch (a node that crashes before its flush) loses
// only that node's notes of the last interval.

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

// accessLog holds the reads not flushed yet: day → ARN → version ids.
type accessLog struct {
	mu   sync.Mutex
	days map[int64]map[string]map[string]struct{}
	// flushing (a one-slot semaphore) serializes flushes, so one that
	// returns nil has seen every read noted before it started applied,
	// including those a concurrent flush had taken.
	flushing chan struct{}
}

// note records a read of version v of s at now, unless the state already
// shows that day on both.
func (a *accessLog) note(s *fsm.Secret, v *fsm.Version, now time.Time) {
	day := dayOf(now)
	if s.LastAccessedDate >= day && v.LastAccessedDate >= day {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.addLocked(day, s.ARN, v.VersionID)
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

// FlushAccess sends the reads this node noted to the leader now. The
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
		buf, err := fsm.Encode(fsm.CmdRecordAccess, c)
		if err == nil {
			_, _, err = r.node.Apply(ctx, buf)
		}
		if err != nil {
			r.access.putBack(cmds[i:])
			return err
		}
	}
	return nil
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
