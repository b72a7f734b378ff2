package audit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// What is wrong with a broken record (Problem.Kind).
const (
	KindHashMismatch  = "hash mismatch"
	KindSequenceGap   = "sequence gap"
	KindUnparsable    = "unparsable line"
	KindMissing       = "missing segment"
	KindTornMidLog    = "torn line"
	KindNoSegments    = "no segments"
	KindFirstNotFirst = "first record is not the log's first"
)

// Problem names the first broken record Verify found.
type Problem struct {
	// File is the segment's file name; Line the 1-based line in it (0
	// when the problem is a whole segment).
	File string
	Line int
	// Sequence is the record's sequence, if its line parses.
	Sequence uint64
	Kind     string
	Detail   string
}

func (p *Problem) Error() string {
	where := p.File
	if p.Line > 0 {
		where = fmt.Sprintf("%s line %d", p.File, p.Line)
	}
	if p.Sequence > 0 {
		where += fmt.Sprintf(" (sequence %d)", p.Sequence)
	}
	return fmt.Sprintf("%s: %s: %s", where, p.Kind, p.Detail)
}

// Torn is a torn last line: what a crash during a write leaves at the end
// of the last segment. It is no break of the chain (the record was never
// acknowledged); Open sets it aside.
type Torn struct {
	File  string
	Line  int
	Bytes int
}

// Report is what Verify checked.
type Report struct {
	Segments int
	Records  int
	// FirstSequence and LastSequence bound the records checked.
	FirstSequence, LastSequence uint64
	// FirstSegment is the number of the first segment present. When it
	// is not 1, older segments were removed (pruned): the chain is
	// checked from the first record present.
	FirstSegment uint64
	// LastHash is the chain hash of the last record: keep it elsewhere
	// to be able to prove later that no record up to it was changed.
	LastHash string
	// Torn is set when the last segment ends with a torn line.
	Torn *Torn
	// Broken is the first break found, nil if the chain holds.
	Broken *Problem
}

// Verify checks every segment in dir in order: segment numbers without
// gaps, each line a record, sequences that follow each other from 1 (or,
// when the first segments were pruned, from the first record present), and
// each previousHash equal to the hash of the line before. It stops at the
// first break, which Report.Broken names; the error is then that *Problem.
// Other errors are I/O errors.
func Verify(dir string) (Report, error) {
	var rep Report
	segs, err := segments(dir)
	if err != nil {
		return rep, err
	}
	if len(segs) == 0 {
		rep.Broken = &Problem{File: dir, Kind: KindNoSegments, Detail: "the directory holds no audit-*.log segment"}
		return rep, rep.Broken
	}
	rep.FirstSegment = segs[0]
	v := &verifier{rep: &rep, first: segs[0] == 1}
	for i, n := range segs {
		if i > 0 && n != segs[i-1]+1 {
			rep.Broken = &Problem{File: segmentName(segs[i-1] + 1), Kind: KindMissing,
				Detail: fmt.Sprintf("segments %s to %s are absent (the log goes on with %s)", segmentName(segs[i-1]+1), segmentName(n-1), segmentName(n))}
			return rep, rep.Broken
		}
		f, err := os.Open(filepath.Join(dir, segmentName(n)))
		if err != nil {
			return rep, err
		}
		rep.Segments++
		err = v.segment(f, segmentName(n), i == len(segs)-1)
		f.Close()
		if err != nil {
			return rep, err
		}
		if rep.Broken != nil {
			return rep, rep.Broken
		}
	}
	return rep, nil
}

// verifier carries the chain from one segment to the next.
type verifier struct {
	rep *Report
	// first: the log starts at segment 1, so its first record must be
	// sequence 1 with ZeroHash.
	first bool
	seq   uint64
	prev  string
	any   bool
}

// segment checks one segment's lines; a break is recorded in rep.Broken.
// last says whether it is the log's last segment (where a torn line is a
// crash's, not a break).
func (v *verifier) segment(r io.Reader, name string, last bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	line := 0
	for {
		b, err := br.ReadBytes('\n')
		if len(b) == 0 && err == io.EOF {
			return nil
		}
		if err != nil && err != io.EOF {
			return err
		}
		line++
		if err == io.EOF { // no newline: a torn line
			if last {
				v.rep.Torn = &Torn{File: name, Line: line, Bytes: len(b)}
				return nil
			}
			v.rep.Broken = &Problem{File: name, Line: line, Kind: KindTornMidLog,
				Detail: fmt.Sprintf("the segment ends with %d bytes without a newline, and is not the last segment", len(b))}
			return nil
		}
		if p := v.record(b[:len(b)-1]); p != nil {
			p.File, p.Line = name, line
			v.rep.Broken = p
			return nil
		}
	}
}

// record checks one line (without its newline) against the chain so far.
func (v *verifier) record(b []byte) *Problem {
	rec, err := ParseRecord(b)
	if err != nil {
		return &Problem{Kind: KindUnparsable, Detail: err.Error()}
	}
	switch {
	case !v.any && v.first && rec.Sequence != 1:
		return &Problem{Sequence: rec.Sequence, Kind: KindSequenceGap,
			Detail: fmt.Sprintf("the log's first record has sequence %d, not 1", rec.Sequence)}
	case !v.any && v.first && rec.PreviousHash != ZeroHash:
		return &Problem{Sequence: rec.Sequence, Kind: KindHashMismatch,
			Detail: "the log's first record has a previousHash that is not 64 zeros"}
	case v.any && rec.Sequence != v.seq+1:
		return &Problem{Sequence: rec.Sequence, Kind: KindSequenceGap,
			Detail: fmt.Sprintf("expected sequence %d after %d, found %d (records removed, added or reordered)", v.seq+1, v.seq, rec.Sequence)}
	case v.any && rec.PreviousHash != v.prev:
		return &Problem{Sequence: rec.Sequence, Kind: KindHashMismatch,
			Detail: fmt.Sprintf("previousHash %s does not match the hash %s of the record before (sequence %d): that record or this one was changed",
				rec.PreviousHash, v.prev, v.seq)}
	}
	if !v.any {
		v.rep.FirstSequence = rec.Sequence
	}
	v.any = true
	v.seq, v.prev = rec.Sequence, hashLine(b)
	v.rep.Records++
	v.rep.LastSequence, v.rep.LastHash = v.seq, v.prev
	return nil
}

// VerifyReader checks one segment's bytes as the first and last segment of
// a log (the record reader Verify uses, for tests and fuzzing).
func VerifyReader(r io.Reader) (Report, error) {
	var rep Report
	v := &verifier{rep: &rep, first: true}
	if err := v.segment(r, "segment", true); err != nil {
		return rep, err
	}
	rep.Segments = 1
	if rep.Broken != nil {
		return rep, rep.Broken
	}
	return rep, nil
}

// IsBroken reports whether err is a break of the chain (a *Problem)
// rather than an I/O error.
func IsBroken(err error) bool {
	var p *Problem
	return errors.As(err, &p)
}
