package audit

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Filter selects records for Tail; an empty field matches every record.
type Filter struct {
	// Identity matches the caller's access key id, ARN, user name or
	// principal id (exactly).
	Identity string
	// Operation matches eventName (case-insensitively).
	Operation string
	// Secret matches a substring of a resource's ARN, of the SecretId of
	// a service event, or of the request's secretId or name.
	Secret string
}

// Match reports whether rec passes the filter.
func (f Filter) Match(rec *Record) bool {
	if f.Identity != "" {
		id := rec.UserIdentity
		if f.Identity != id.AccessKeyID && f.Identity != id.ARN && f.Identity != id.UserName && f.Identity != id.PrincipalID {
			return false
		}
	}
	if f.Operation != "" && !strings.EqualFold(f.Operation, rec.EventName) {
		return false
	}
	if f.Secret != "" {
		found := false
		for _, r := range rec.Resources {
			found = found || strings.Contains(r.ARN, f.Secret)
		}
		// The ids as the caller gave them (a record of a refused request
		// names no resource).
		for _, raw := range [][]byte{rec.AdditionalEventData, rec.RequestParameters} {
			found = found || bytes.Contains(raw, []byte(f.Secret))
		}
		if !found {
			return false
		}
	}
	return true
}

// PollInterval is how often Tail looks for new records when following.
var PollInterval = 250 * time.Millisecond

// Tail calls out with the records of the log in dir that match f, in
// order: the last n of them (every one if n <= 0). With follow it then
// waits for new records, in the current segment and the ones begun after
// it, until ctx ends (it then returns nil). Lines that do not parse are
// skipped (Verify reports them); a torn last line is read once complete.
func Tail(ctx context.Context, dir string, f Filter, follow bool, n int, out func(Record) error) error {
	segs, err := segments(dir)
	if err != nil {
		return err
	}
	var ring []Record
	emit := func(rec Record) error {
		if !f.Match(&rec) {
			return nil
		}
		if n > 0 {
			if len(ring) == n {
				ring = ring[1:]
			}
			ring = append(ring, rec)
			return nil
		}
		return out(rec)
	}
	flush := func() error {
		for _, r := range ring {
			if err := out(r); err != nil {
				return err
			}
		}
		ring, n = nil, 0
		return nil
	}
	var cur uint64
	var file *os.File
	var br *bufio.Reader
	var partial []byte
	defer func() {
		if file != nil {
			file.Close()
		}
	}()
	open := func(seg uint64) error {
		if file != nil {
			file.Close()
		}
		fh, err := os.Open(filepath.Join(dir, segmentName(seg)))
		if err != nil {
			return err
		}
		file, br, cur, partial = fh, bufio.NewReaderSize(fh, 64<<10), seg, nil
		return nil
	}
	// drain reads the open segment to its end; it returns whether the
	// segment ended with a complete line.
	drain := func() error {
		for {
			b, err := br.ReadBytes('\n')
			if len(b) > 0 && err == nil {
				line := b[:len(b)-1]
				if partial != nil {
					line = append(partial, line...)
					partial = nil
				}
				if rec, perr := ParseRecord(line); perr == nil {
					if err := emit(rec); err != nil {
						return err
					}
				}
				continue
			}
			if err == io.EOF {
				partial = append(partial, b...)
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	for _, seg := range segs {
		if err := open(seg); err != nil {
			return err
		}
		if err := drain(); err != nil {
			return err
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if !follow {
		return nil
	}
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if file != nil {
			if err := drain(); err != nil {
				return err
			}
		}
		segs, err := segments(dir)
		if err != nil {
			return err
		}
		for _, seg := range segs {
			if seg <= cur {
				continue
			}
			// A newer segment exists: the current one is complete (a
			// segment is closed before the next begins).
			if file != nil {
				if err := drain(); err != nil {
					return err
				}
			}
			if err := open(seg); err != nil {
				return err
			}
			if err := drain(); err != nil {
				return err
			}
		}
	}
}
