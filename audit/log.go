package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// DefaultSegmentBytes is the size past which a segment is closed and the
// next one begun.
const DefaultSegmentBytes = 64 << 20

// Options tune a Log.
type Options struct {
	// SegmentBytes: once a segment holds at least this many bytes, the
	// next record begins a new one (default DefaultSegmentBytes).
	SegmentBytes int64
	// SyncEveryRecord fsyncs the segment after every record. Off by
	// default: see Write for why the page cache is enough.
	SyncEveryRecord bool
}

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("audit: the log is closed")

// Log is an open audit log directory. Write is safe for concurrent use:
// writes are serialized, and each record is one write(2) of one line.
type Log struct {
	dir  string
	opts Options

	mu      sync.Mutex
	f       *os.File
	segment uint64 // number of the segment records go to
	size    int64  // bytes of complete records in it
	seq     uint64 // sequence of the last record written (0: none)
	prev    string // chain hash of the last record's line
	// broken is the error of the last failed write, nil while the log
	// works. While it is set, Ready and Write first try to reopen the
	// segment (recover), so the log mends once the cause is gone.
	broken error
	closed bool
	buf    bytes.Buffer
	enc    *json.Encoder
}

// segmentName is the file name of segment n.
func segmentName(n uint64) string { return fmt.Sprintf("audit-%08d.log", n) }

// tornSuffix names the file a torn last line is moved to.
const tornSuffix = ".torn"

// parseSegmentName returns the number of a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, "audit-")
	if !ok {
		return 0, false
	}
	digits, ok = strings.CutSuffix(digits, ".log")
	if !ok || len(digits) < 8 {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n == 0 {
		return 0, false
	}
	return n, true
}

// segments lists the segment numbers in dir, in order.
func segments(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, e := range entries {
		if n, ok := parseSegmentName(e.Name()); ok && e.Type().IsRegular() {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Open opens (creating it if needed) the audit log in dir and continues
// its chain from the last complete record of the last segment.
//
// A crash can leave the last line of the last segment torn (written in
// part: no newline at its end). Open moves those bytes aside, appending
// them to <segment>.torn next to the segment, truncates the segment to its
// last complete record, and continues the chain from that record: the torn
// record was never acknowledged (its request got no answer), and the
// .torn file keeps what it held for an inquiry. A last line that is
// complete but does not parse is not a crash's doing; Open refuses it
// (check the directory with Verify).
func Open(dir string, opts Options) (*Log, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	l := &Log{dir: dir, opts: opts, prev: ZeroHash}
	l.enc = json.NewEncoder(&l.buf)
	l.enc.SetEscapeHTML(false)
	segs, err := segments(dir)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if len(segs) == 0 {
		l.segment = 1
		if l.f, err = createSegment(dir, 1); err != nil {
			return nil, err
		}
		return l, nil
	}
	l.segment = segs[len(segs)-1]
	path := filepath.Join(dir, segmentName(l.segment))
	line, end, err := lastLine(path)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	} else if st.Size() > end {
		if err := setAside(path, end); err != nil {
			return nil, err
		}
	}
	l.size = end
	// The last segment may hold no complete record (begun just before a
	// crash): the chain then ends in an earlier one.
	for i := len(segs) - 2; line == nil && i >= 0; i-- {
		if line, _, err = lastLine(filepath.Join(dir, segmentName(segs[i]))); err != nil {
			return nil, err
		}
	}
	if line != nil {
		rec, err := ParseRecord(line)
		if err != nil {
			return nil, fmt.Errorf("audit: the last record in %s cannot be continued: %v (run coffer audit verify %s)", dir, err, dir)
		}
		l.seq, l.prev = rec.Sequence, hashLine(line)
	}
	if l.f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return l, nil
}

// createSegment creates segment n (it must not exist) and makes its entry
// in the directory durable.
func createSegment(dir string, n uint64) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, segmentName(n)), os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return f, nil
}

// lastLine returns the last complete line of the file at path (without
// its newline; nil if it has none) and end, the offset just past it: the
// bytes from end on are a torn line. It reads the file from its end.
func lastLine(path string) (line []byte, end int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("audit: %w", err)
	}
	nl := func(before int64) (int64, error) { return lastNewline(f, before) }
	p, err := nl(st.Size())
	if err != nil || p < 0 {
		return nil, 0, err
	}
	q, err := nl(p)
	if err != nil {
		return nil, 0, err
	}
	line = make([]byte, p-(q+1))
	if _, err := f.ReadAt(line, q+1); err != nil {
		return nil, 0, fmt.Errorf("audit: %w", err)
	}
	return line, p + 1, nil
}

// lastNewline is the offset of the last '\n' before offset before, -1 if
// there is none.
func lastNewline(f *os.File, before int64) (int64, error) {
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	for before > 0 {
		from := max(0, before-chunk)
		b := buf[:before-from]
		if _, err := f.ReadAt(b, from); err != nil && err != io.EOF {
			return 0, fmt.Errorf("audit: %w", err)
		}
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			return from + int64(i), nil
		}
		before = from
	}
	return -1, nil
}

// setAside appends the bytes of path from offset end on to path.torn and
// truncates path to end.
func setAside(path string, end int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	torn, err := io.ReadAll(io.NewSectionReader(f, end, 1<<62))
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	t, err := os.OpenFile(path+tornSuffix, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	_, err = t.Write(append(torn, '\n'))
	if err == nil {
		err = t.Sync()
	}
	if cerr := t.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("audit: keeping a torn line: %w", err)
	}
	if err := f.Truncate(end); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return f.Sync()
}

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }

// Write appends rec, setting its Sequence and PreviousHash. It returns
// only once the line is in the segment file (in the page cache): a record
// that Write accepted survives a crash of the process. It is not fsynced
// (unless Options.SyncEveryRecord): a record per request must not cost a
// disk flush per request, and the page cache is the kernel's, so only a
// crash of the machine can lose the last records, which Verify then does
// not miss (the chain ends earlier; nothing after it refers to them). A
// segment is fsynced when it is closed, by rotation or Close.
//
// If the line cannot be written the log is broken: Write returns the
// error, and every later Write (and Ready) first tries to reopen the
// segment, cutting off any part of the failed line, and fails again until
// that works.
func (l *Log) Write(rec Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.mend(); err != nil {
		return err
	}
	if l.size >= l.opts.SegmentBytes {
		if err := l.rotate(); err != nil {
			l.broken = err
			return err
		}
	}
	rec.Sequence, rec.PreviousHash = l.seq+1, l.prev
	l.buf.Reset()
	if err := l.enc.Encode(&rec); err != nil {
		// A record that cannot be encoded is the caller's fault; the log
		// is intact.
		return fmt.Errorf("audit: encode record: %w", err)
	}
	line := l.buf.Bytes()
	n, err := l.f.Write(line)
	if err == nil && l.opts.SyncEveryRecord {
		err = l.f.Sync()
	}
	if err != nil {
		l.broken = fmt.Errorf("audit: write %s: %w", segmentName(l.segment), err)
		if n > 0 {
			// Cut off the part written now, if the file still lets us;
			// mend checks again.
			l.f.Truncate(l.size)
		}
		return l.broken
	}
	l.size += int64(n)
	l.seq++
	l.prev = hashLine(line[:len(line)-1])
	return nil
}

// Ready reports whether the log can be written: nil, or the error of the
// last failed write if reopening the segment still fails. The server asks
// it before serving a request.
//
// It also checks that the segment's path still names the open file: a
// segment (or the directory) moved or removed under a running server
// would otherwise swallow records into a file nobody reads, so the log is
// broken until the path is back (or a restart begins a new chain there).
func (l *Log) Ready() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken == nil && !l.closed && l.f != nil {
		path := filepath.Join(l.dir, segmentName(l.segment))
		open, err := l.f.Stat()
		if err == nil {
			var st os.FileInfo
			if st, err = os.Stat(path); err == nil && !os.SameFile(open, st) {
				err = errors.New("it is another file now")
			}
		}
		if err != nil {
			l.broken = fmt.Errorf("audit: segment %s was moved or removed: %v", path, err)
		}
	}
	return l.mend()
}

// Sequence is the sequence number of the last record written.
func (l *Log) Sequence() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// mend reopens the segment of a broken log: the file must still hold
// every record the log wrote, ending with the last one (checked by its
// hash); bytes after it, left by the failed write, are set aside. Called
// with mu held.
func (l *Log) mend() error {
	if l.closed {
		return ErrClosed
	}
	if l.broken == nil {
		return nil
	}
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	path := filepath.Join(l.dir, segmentName(l.segment))
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%w (cannot reopen it: %v)", l.broken, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w (%s is not a regular file)", l.broken, path)
	}
	if st.Size() < l.size {
		return fmt.Errorf("%w (%s is shorter than the records written to it: %d < %d bytes; check it with coffer audit verify, then restart)",
			l.broken, path, st.Size(), l.size)
	}
	if st.Size() > l.size {
		if err := setAside(path, l.size); err != nil {
			return fmt.Errorf("%w (%v)", l.broken, err)
		}
	}
	if l.size > 0 {
		line, _, err := lastLine(path)
		if err != nil {
			return fmt.Errorf("%w (%v)", l.broken, err)
		}
		if line == nil || hashLine(line) != l.prev {
			return fmt.Errorf("%w (the last record of %s is not the one this log wrote; check it with coffer audit verify, then restart)", l.broken, path)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("%w (cannot reopen it: %v)", l.broken, err)
	}
	l.f, l.broken = f, nil
	return nil
}

// rotate closes the full segment (fsynced) and begins the next. Called
// with mu held; on failure the state still names the full segment, and
// the next write tries again.
func (l *Log) rotate() error {
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit: sync %s: %w", segmentName(l.segment), err)
	}
	f, err := createSegment(l.dir, l.segment+1)
	if err != nil {
		return err
	}
	l.f.Close()
	l.f, l.segment, l.size = f, l.segment+1, 0
	return nil
}

// Close fsyncs and closes the current segment. Writes after Close fail
// with ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.f == nil {
		return nil
	}
	err := l.f.Sync()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}
