package fsm_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/fsm"
)

// snapshotFile is a snapshot file of the state h built.
func snapshotFile(t testing.TB, h *harness) []byte {
	body := snapshotBytes(t, h.f)
	sum := sha256.Sum256(body)
	var buf bytes.Buffer
	if err := fsm.WriteSnapshotFile(&buf, fsm.SnapshotFileHeader{Region: testRegion, AccountID: testAccount, Node: "n1",
		Index: h.index(), Term: 2, Created: "2026-12-05T00:00:00Z", Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])},
		bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A snapshot file reads back with its header, and the state it carries is
// counted without being restored; a truncated, damaged, extended or
// foreign file is refused with the reason.
func TestSnapshotFile_RoundTripAndDamage(t *testing.T) {
	h := keysRegion(t)
	h.ok(fsm.CmdCreateSecret, createCmd("a", "aaaaaa", strVersionPtr("v1", "x"), t0))
	h.ok(fsm.CmdPutSecretValue, putCmd(arnOf("a", "aaaaaa"), "v2", nil, t0+1))
	h.ok(fsm.CmdCreateSecret, createCmd("b", "bbbbbb", nil, t0+2))
	file := snapshotFile(t, h)
	hdr, body, err := fsm.ReadSnapshotFile(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	info, err := fsm.InspectSnapshot(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Region != testRegion || info.Region != testRegion || info.AccountID != testAccount || info.Index != h.index() ||
		info.Records["secrets"] != 2 || info.Versions != 2 || info.Records["keys"] != 1 || info.Records["aliases"] != 1 || info.Records["access_keys"] != 1 {
		t.Fatalf("header %+v, info %+v", hdr, info)
	}
	for name, tc := range map[string]struct {
		file []byte
		want string
	}{
		"truncated":  {file[:len(file)-10], "truncated"},
		"extended":   {append(bytes.Clone(file), 'x'), "bytes after"},
		"damaged":    {flipLast(file), "checksum does not match"},
		"foreign":    {[]byte("PK\x03\x04 a zip file"), "not a Coffer snapshot file"},
		"no header":  {[]byte(fsm.SnapshotFileMagic + "\n"), "snapshot header"},
		"bad header": {[]byte(fsm.SnapshotFileMagic + "\n{\"region\":\"x\",\"bogus\":1}\n"), "snapshot header"},
	} {
		if _, _, err := fsm.ReadSnapshotFile(bytes.NewReader(tc.file)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, tc.want)
		}
	}
	// A damaged state stream (its checksum recomputed) is an error, not
	// a panic.
	if _, err := fsm.InspectSnapshot(bytes.NewReader(body[:len(body)/2])); err == nil {
		t.Error("half a state stream inspected without error")
	}
}

func flipLast(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)-1] ^= 1
	return c
}

func FuzzReadSnapshotFile(f *testing.F) {
	h := keysRegion(f)
	h.ok(fsm.CmdCreateSecret, createCmd("a", "aaaaaa", strVersionPtr("v1", "x"), t0))
	f.Add(snapshotFile(f, h))
	f.Add([]byte(fsm.SnapshotFileMagic + "\n{}\n"))
	f.Add([]byte("x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, body, err := fsm.ReadSnapshotFile(bytes.NewReader(data))
		if err != nil {
			return
		}
		fsm.InspectSnapshot(bytes.NewReader(body)) // must not panic
		// And a stream of any bytes, checksum or not.
		fsm.InspectSnapshot(bytes.NewReader(data))
	})
}
