package audit

import (
	"bytes"
	"os"
	"testing"
)

// FuzzVerifyReader feeds arbitrary bytes to the record reader Verify
// uses. It must never panic, and what it accepts must hold up: every
// complete line of an accepted segment parses, the records counted are
// the lines, and their sequences follow each other.
//
//	go test -run XXX -fuzz FuzzVerifyReader -fuzztime 60s ./audit/
func FuzzVerifyReader(f *testing.F) {
	// A real three-record segment, and damaged forms of it.
	dir := f.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		f.Fatal(err)
	}
	writeN(f, l, 3)
	l.Close()
	good, err := os.ReadFile(segPath(dir, 1))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-7])
	f.Add(bytes.Replace(good, []byte("Op1"), []byte("Op7"), 1))
	f.Add([]byte("{}\n"))
	f.Add([]byte("\n\n"))
	f.Add([]byte(`{"sequence":1,"previousHash":"` + ZeroHash + `"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := VerifyReader(bytes.NewReader(data))
		if err != nil && !IsBroken(err) {
			t.Fatalf("an in-memory reader gave a non-chain error: %v", err)
		}
		if err != nil {
			return
		}
		lines := bytes.Split(data, []byte("\n"))
		complete := lines[:len(lines)-1]
		if len(complete) != rep.Records {
			t.Fatalf("accepted %d records from %d complete lines", rep.Records, len(complete))
		}
		if (len(lines[len(lines)-1]) > 0) != (rep.Torn != nil) {
			t.Fatalf("torn tail %v for trailing bytes %q", rep.Torn, lines[len(lines)-1])
		}
		for i, line := range complete {
			r, perr := ParseRecord(line)
			if perr != nil {
				t.Fatalf("accepted line %d does not parse: %v", i+1, perr)
			}
			if r.Sequence != uint64(i+1) {
				t.Fatalf("accepted line %d has sequence %d", i+1, r.Sequence)
			}
		}
	})
}
