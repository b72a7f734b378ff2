package fsm_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"testing"

	"github.com/cofferhq/coffer/fsm"
)

// testdata/snapshot-v1-mixed is a snapshot of buildMixedLog's state written
// by the binary before the change feed (record types 1-3, secrets without
// CreateIndex and ModifyIndex, no tombstones). It must restore, and a
// snapshot of the restored state must be byte for byte the same stream:
// the format of the existing tables did not change, and so the digest of
// an equal state did not either.
func TestFSM_Restore_SnapshotWrittenBeforeChangeFeed(t *testing.T) {
	old, err := os.ReadFile("testdata/snapshot-v1-mixed")
	if err != nil {
		t.Fatal(err)
	}
	f := fsm.New(nil)
	if err := f.Restore(io.NopCloser(bytes.NewReader(old))); err != nil {
		t.Fatal(err)
	}
	if f.AppliedIndex() != 29 {
		t.Fatalf("restored index %d, want 29", f.AppliedIndex())
	}
	txn, _ := f.ReadTxn()
	a := fsm.SecretByName(txn, "a")
	if a == nil || fsm.RegionRecord(txn) == nil || fsm.LookupAccessKey(txn, "AKIAROOT") == nil {
		t.Fatal("secret a, the region or the root key is missing")
	}
	checkInvariants(t, txn)
	if !bytes.Equal(snapshotBytes(t, f), old) {
		t.Fatal("a snapshot of the restored state differs from the snapshot it was restored from")
	}
	sum := sha256.Sum256(old)
	if got := digestOf(t, f); got != hex.EncodeToString(sum[:]) || got != "c3412bfbe51adafe83cb2bde335a6aca92d4a89b6d45955bf51ffa96de56f146" {
		t.Fatalf("digest %s, want the one the old binary computed", got)
	}
}
