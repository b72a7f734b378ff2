package check

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// PanicLine is a line of a node's log that shows the process died of a
// Go panic or a runtime fatal error.
type PanicLine struct {
	Node string `json:"node"`
	Line int    `json:"line"`
	Text string `json:"text"`
}

// ScanLogForPanics returns the lines of one node's log that contain
// "panic:" or "fatal error:" (the Go runtime's words for a crash; a
// recovered handler panic is logged as "handler panicked", which does
// not match).
func ScanLogForPanics(node string, r io.Reader) ([]PanicLine, error) {
	var out []PanicLine
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if strings.Contains(text, "panic:") || strings.Contains(text, "fatal error:") {
			if len(text) > 300 {
				text = text[:300]
			}
			out = append(out, PanicLine{Node: node, Line: line, Text: text})
		}
	}
	return out, sc.Err()
}

// NoPanics is INVALID when any node log shows a panic or fatal error,
// UNKNOWN when no log was read.
func NoPanics(f Files) Result {
	r := Result{Name: "no panic in node logs"}
	for _, p := range f.Panics {
		r.addError(fmt.Sprintf("%s/coffer.log:%d: %s", p.Node, p.Line, p.Text))
	}
	switch {
	case f.LogsRead == 0:
		r.Verdict, r.Detail = Unknown, "no node log found"
	case len(f.Panics) > 0:
		r.Verdict, r.Detail = Invalid, fmt.Sprintf("%d panic/fatal lines in %d logs", len(f.Panics), f.LogsRead)
	default:
		r.Verdict, r.Detail = Valid, fmt.Sprintf("0 panic/fatal lines in %d logs", f.LogsRead)
	}
	return r
}

// DiskScan is the result of searching every file under the nodes' data
// directories (and their logs) for the marker every written value starts
// with (plaintext.json). Values are sealed before they reach the Raft log,
// snapshots or the state store, so the marker must never be found.
type DiskScan struct {
	Marker string   `json:"marker"`
	Roots  []string `json:"roots"`
	Files  int      `json:"files"`
	Bytes  int64    `json:"bytes"`
	Hits   []string `json:"hits,omitempty"` // path: offset of the first occurrence
	Errors []string `json:"errors,omitempty"`
}

// ScanForMarker reads every regular file under roots (files or
// directories) and records those that contain marker.
func ScanForMarker(marker string, roots ...string) DiskScan {
	s := DiskScan{Marker: marker, Roots: roots}
	m := []byte(marker)
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				s.Errors = append(s.Errors, err.Error())
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				s.Errors = append(s.Errors, err.Error())
				return nil
			}
			s.Files++
			s.Bytes += int64(len(b))
			if i := bytes.Index(b, m); i >= 0 {
				s.Hits = append(s.Hits, fmt.Sprintf("%s: offset %d", path, i))
			}
			return nil
		})
		if err != nil {
			s.Errors = append(s.Errors, err.Error())
		}
	}
	return s
}

// Plaintext judges a disk scan: the marker found anywhere is INVALID; a
// scan that read nothing, or had errors, is UNKNOWN.
func Plaintext(s DiskScan) Result {
	r := Result{Name: "plaintext on disk"}
	for _, h := range s.Hits {
		r.addError("value marker found in " + h)
	}
	for _, e := range s.Errors {
		r.addError("scan error: " + e)
	}
	switch {
	case s.Marker == "":
		r.Verdict, r.Detail = Unknown, "no marker recorded"
	case len(s.Hits) > 0:
		r.Verdict = Invalid
		r.Detail = fmt.Sprintf("value marker %q found in %d of %d files", s.Marker, len(s.Hits), s.Files)
	case len(s.Errors) > 0 || s.Files == 0:
		r.Verdict = Unknown
		r.Detail = fmt.Sprintf("%d files read, %d errors", s.Files, len(s.Errors))
	default:
		r.Verdict = Valid
		r.Detail = fmt.Sprintf("marker %q in none of %d files (%d bytes)", s.Marker, s.Files, s.Bytes)
	}
	return r
}
