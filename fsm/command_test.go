package fsm_test

import (
	"bytes"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/raft"
)

// sampleCommands has one command of each type with every field set.
func sampleCommands() map[fsm.CommandType]any {
	env := crypto.Envelope{KEKID: "kek-1", WrappedKey: []byte{1, 2, 3}, Ciphertext: []byte{4, 5, 6, 7}}
	nv := fsm.NewVersion{VersionID: "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE", Binary: true, Value: env, Digest: []byte{8, 9}}
	arn := arnOf("MyTestDatabaseSecret", "a1b2c3")
	cmds := map[fsm.CommandType]any{
		fsm.CmdInitRegion: &fsm.InitRegion{Region: testRegion, AccountID: testAccount, KEKID: "kek-1",
			SealedKeyring: []byte("sealed keyring"), KeyringFormat: 2, ReplicationKeyID: "replication/1", ReplicationPublicKey: []byte{3},
			RootKey: fsm.AccessKey{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", Identity: "root", SealedSecret: []byte{0, 255}, CreatedDate: t0},
			Date:    t0},
		fsm.CmdCreateSecret: &fsm.CreateSecret{ARN: arn, Name: "MyTestDatabaseSecret", Description: "déjà vu",
			KmsKeyID: "alias/x", KeyID: "1234abcd-12ab-34cd-56ef-1234567890ab", Tags: []fsm.Tag{{Key: "k", Value: "v"}, {Key: "empty"}}, Version: &nv, Date: t0,
			Replicas: []fsm.Replica{{Region: "eu-west-1", KmsKeyID: "alias/r", Force: true}}},
		fsm.CmdPutSecretValue:    &fsm.PutSecretValue{ARN: arn, Version: nv, Stages: []string{"AWSCURRENT", "x"}, Date: t0 + 1},
		fsm.CmdDeleteSecret:      &fsm.DeleteSecret{ARN: arn, Force: true, DeletionDate: t0 + 30*day, Date: t0 + 2},
		fsm.CmdRestoreSecret:     &fsm.RestoreSecret{ARN: arn, Date: t0 + 3},
		fsm.CmdNoop:              &fsm.Noop{Term: 42},
		fsm.CmdResetRegion:       &fsm.ResetRegion{Region: testRegion, Date: t0 + 4},
		fsm.CmdCompactTombstones: &fsm.CompactTombstones{Before: 17},
		fsm.CmdRekey: &fsm.Rekey{PrevInitID: "0011223344556677", PrevGen: 3, SealedKeyring: []byte{7, 7}, KeyringFormat: 2, SealedRootKey: []byte{6}, Seal: fsm.SealConfig{InitID: "8899aabbccddeeff", Shares: 5, Threshold: 3},
			AccessKeys: []fsm.AccessKey{{AccessKeyID: "AKIAROOT", Identity: "root", SealedSecret: []byte{1}, KEKID: "k1"}}},
	}
	maps.Copy(cmds, secretOpsSamples(arn, nv))
	maps.Copy(cmds, keySamples(arn))
	maps.Copy(cmds, replicationSamples(arn, env))
	maps.Copy(cmds, iamSamples())
	return cmds
}

func TestEncodeDecode_RoundTrip(t *testing.T) {
	cmds := sampleCommands()
	// Every command of the table has a sample, and nothing else does.
	if got, want := slices.Sorted(maps.Keys(cmds)), fsm.CommandTypes(); !slices.Equal(got, want) {
		t.Fatalf("sampleCommands has %v, the command table %v", got, want)
	}
	// Zero values too: absent optional parts stay absent.
	zero := map[fsm.CommandType]any{}
	for ct, cmd := range cmds {
		zero[ct] = reflect.New(reflect.TypeOf(cmd).Elem()).Interface()
	}
	for _, set := range []map[fsm.CommandType]any{cmds, zero} {
		for ct, cmd := range set {
			t.Run(ct.String(), func(t *testing.T) {
				buf := encode(t, ct, cmd)
				if buf[0] != byte(ct) {
					t.Fatalf("type byte %d, want %d", buf[0], ct)
				}
				gotType, got, err := fsm.Decode(buf)
				if err != nil {
					t.Fatal(err)
				}
				if gotType != ct || !reflect.DeepEqual(got, cmd) {
					t.Fatalf("decoded %s %#v\nwant %s %#v", gotType, got, ct, cmd)
				}
				if again := encode(t, ct, got); !bytes.Equal(again, buf) {
					t.Fatal("encoding is not canonical")
				}
			})
		}
	}
	// nil Stages (default) and empty Stages are different commands.
	for _, stages := range [][]string{nil, {}} {
		_, got, err := fsm.Decode(encode(t, fsm.CmdPutSecretValue, &fsm.PutSecretValue{Stages: stages}))
		if err != nil {
			t.Fatal(err)
		}
		if s := got.(*fsm.PutSecretValue).Stages; (s == nil) != (stages == nil) {
			t.Fatalf("Stages %#v decoded as %#v", stages, s)
		}
	}
}

func TestDecode_Errors(t *testing.T) {
	for _, data := range [][]byte{nil, {}, {0}, {7}, {200}, {255, 0x80}} {
		ct, cmd, err := fsm.Decode(data)
		if err == nil || cmd != nil {
			t.Errorf("Decode(%x) = %v, %v, %v; want an error and no command", data, ct, cmd, err)
		}
	}
}

func TestCommandType_String(t *testing.T) {
	want := map[fsm.CommandType]string{
		fsm.CmdInitRegion: "InitRegion", fsm.CmdCreateSecret: "CreateSecret", fsm.CmdPutSecretValue: "PutSecretValue",
		fsm.CmdDeleteSecret: "DeleteSecret", fsm.CmdRestoreSecret: "RestoreSecret", fsm.CmdNoop: "Noop",
		0: "CommandType(0)", 200: "CommandType(200)",
	}
	for ct, s := range want {
		if ct.String() != s {
			t.Errorf("%d.String() = %q, want %q", uint8(ct), ct.String(), s)
		}
	}
	// The numbers are the log format: they never change.
	for ct, n := range map[fsm.CommandType]uint8{fsm.CmdInitRegion: 1, fsm.CmdCreateSecret: 2, fsm.CmdPutSecretValue: 3,
		fsm.CmdDeleteSecret: 4, fsm.CmdRestoreSecret: 5, fsm.CmdNoop: 6} {
		if uint8(ct) != n {
			t.Errorf("%s = %d, want %d", ct, uint8(ct), n)
		}
	}
}

// readCorpusFile parses a file in Go's fuzz corpus format holding one
// []byte value.
func readCorpusFile(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" ||
		!strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
		t.Fatalf("%s: not a one-value []byte corpus file", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}

// The checked-in seed corpus doubles as a log-format fixture: entries
// written by earlier versions must keep decoding (fields are only added).
func TestDecode_CheckedInEncodings(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzDecode", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 8 {
		t.Fatalf("%d seed corpus files, want at least 8", len(files))
	}
	seen := map[fsm.CommandType]bool{}
	for _, path := range files {
		base := filepath.Base(path)
		data := readCorpusFile(t, path)
		ct, cmd, err := fsm.Decode(data)
		switch {
		case strings.HasPrefix(base, "valid-"):
			name, _, _ := strings.Cut(strings.TrimPrefix(base, "valid-"), "-")
			if err != nil || ct.String() != name {
				t.Errorf("%s: decoded %s, %v", base, ct, err)
			}
			seen[ct] = true
		case strings.HasPrefix(base, "bad-"):
			if err == nil {
				t.Errorf("%s: decoded %s %#v, want an error", base, ct, cmd)
			}
		}
	}
	for ct := range sampleCommands() {
		if !seen[ct] {
			t.Errorf("no valid-%s in the seed corpus", ct)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for ct, cmd := range sampleCommands() {
		f.Add(encode(f, ct, cmd))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ct, cmd, err := fsm.Decode(data)
		if err != nil {
			if cmd != nil {
				t.Fatalf("Decode returned a command with the error %v", err)
			}
			return
		}
		if cmd == nil || reflect.ValueOf(cmd).IsNil() {
			t.Fatalf("Decode of %s returned no command and no error", ct)
		}
		buf, err := fsm.Encode(ct, cmd)
		if err != nil {
			t.Fatalf("Encode of a decoded %s: %v", ct, err)
		}
		ct2, cmd2, err := fsm.Decode(buf)
		if err != nil {
			t.Fatalf("Decode of a re-encoded %s: %v", ct, err)
		}
		if ct2 != ct || !reflect.DeepEqual(cmd2, cmd) {
			t.Fatalf("re-encoding changed the command:\n%#v\n%#v", cmd, cmd2)
		}
	})
}

// fuzzBase is a small state for FuzzApply to work on: a region, a secret
// with two versions, a secret without a value, a scheduled secret and a
// tombstone, as snapshot bytes.
func fuzzBase(tb testing.TB) ([]byte, uint64) {
	h := newHarness(tb)
	a := arnOf("a", "aaaaaa")
	h.ok(fsm.CmdInitRegion, &fsm.InitRegion{Region: testRegion, AccountID: testAccount, KEKID: "kek-1", RootKey: fsm.AccessKey{AccessKeyID: "AKIA"}, Date: t0})
	h.ok(fsm.CmdCreateKey, &fsm.CreateKey{SealedKeyring: []byte("k"), Key: fsm.Key{ID: "cust", CreatedDate: t0,
		Versions: []fsm.KeyVersion{{KEKID: "cust/1", CreatedDate: t0}}}, Alias: "alias/cust"})
	h.ok(fsm.CmdCreateSecret, createCmd("a", "aaaaaa", strVersionPtr("v1", "x"), t0))
	h.ok(fsm.CmdPutSecretValue, putCmd(a, "v2", []string{"AWSPENDING", "custom"}, t0+1))
	h.ok(fsm.CmdCreateSecret, createCmd("b", "bbbbbb", nil, t0+2))
	h.ok(fsm.CmdCreateSecret, createCmd("c", "cccccc", nil, t0+3))
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arnOf("c", "cccccc"), DeletionDate: t0 + 7*day, Date: t0 + 4})
	h.ok(fsm.CmdCreateSecret, createCmd("d", "dddddd", nil, t0+5))
	h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arnOf("d", "dddddd"), Force: true, Date: t0 + 6})
	return snapshotBytes(tb, h.f), h.index()
}

func restored(tb testing.TB, snap []byte) *fsm.FSM {
	f := fsm.New(nil)
	if err := f.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		tb.Fatal(err)
	}
	return f
}

// FuzzApply feeds arbitrary entries to Apply, twice in a row (a retry): it
// must not panic, must answer *Result or *apierr.Error, must change nothing
// when it refuses, and must keep the state invariants.
func FuzzApply(f *testing.F) {
	snap, base := fuzzBase(f)
	a, b, c := arnOf("a", "aaaaaa"), arnOf("b", "bbbbbb"), arnOf("c", "cccccc")
	for _, seed := range []struct {
		ct  fsm.CommandType
		cmd any
	}{
		{fsm.CmdInitRegion, &fsm.InitRegion{Region: "x"}},
		{fsm.CmdCreateSecret, createCmd("a", "zzzzzz", strVersionPtr("v1", "x"), t0+10)},
		{fsm.CmdCreateSecret, createCmd("new", "nnnnnn", strVersionPtr("n1", "x"), t0+10)},
		{fsm.CmdCreateSecret, createCmd("c", "zzzzzz", nil, t0+10)},
		{fsm.CmdPutSecretValue, putCmd(a, "v3", nil, t0+10)},
		{fsm.CmdPutSecretValue, putCmd(a, "v3", []string{"AWSCURRENT", "custom"}, t0+10)},
		{fsm.CmdPutSecretValue, putCmd(a, "v2", nil, t0+10)},
		{fsm.CmdPutSecretValue, putCmd(b, "b1", []string{"x"}, t0+10)},
		{fsm.CmdPutSecretValue, putCmd(c, "c1", nil, t0+10)},
		{fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: a, DeletionDate: t0 + 7*day, Date: t0 + 10}},
		{fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: c, Force: true, Date: t0 + 10}},
		{fsm.CmdRestoreSecret, &fsm.RestoreSecret{ARN: c, Date: t0 + 10}},
		{fsm.CmdNoop, &fsm.Noop{}},
		{fsm.CmdCompactTombstones, &fsm.CompactTombstones{Before: 9}},
		{fsm.CmdCompactTombstones, &fsm.CompactTombstones{Before: 100}},
	} {
		f.Add(encode(f, seed.ct, seed.cmd))
	}
	for _, seed := range secretOpsFuzzSeeds(a, b, c) {
		f.Add(encode(f, seed.ct, seed.cmd))
	}
	for ct, cmd := range keySamples(a) {
		f.Add(encode(f, ct, cmd))
	}
	for ct, cmd := range iamSamples() {
		f.Add(encode(f, ct, cmd))
	}
	f.Add([]byte{200})
	f.Add([]byte{0x80, 1, 2})
	f.Add([]byte{0x7f, 1, 2})
	f.Add([]byte{0})
	f.Add([]byte{})
	noop := encode(f, fsm.CmdNoop, &fsm.Noop{})

	f.Fuzz(func(t *testing.T, data []byte) {
		// An entry of a type this binary does not know and that is not
		// ignorable stops the node: Apply panics by design (Consul's rule,
		// TestFSM_Apply_UnknownType_Stops), since skipping it would let
		// the node diverge. That is not a bug the fuzzer should report.
		// Ignorable unknown types, type 0 and empty entries go on.
		if len(data) > 0 {
			if ct := fsm.CommandType(data[0]); ct != 0 && !ct.Known() && !ct.Ignorable() {
				t.Skip("unknown, not ignorable: Apply stops the node")
			}
		}
		fz, twin := restored(t, snap), restored(t, snap)
		for i := uint64(1); i <= 2; i++ {
			idx := base + i
			resp := fz.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: data})
			twin.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: noop})
			switch r := resp.(type) {
			case *fsm.Result:
				if r == nil {
					t.Fatal("nil *Result")
				}
				// The twin follows, so the next refusal is compared against
				// the same state.
				twin = restored(t, snapshotBytes(t, fz))
			case *apierr.Error:
				if r == nil || r.Code == "" || r.Message == "" {
					t.Fatalf("empty error %#v", r)
				}
				if digestOf(t, fz) != digestOf(t, twin) {
					t.Fatalf("refused entry (%v) changed the state", r)
				}
			default:
				t.Fatalf("Apply returned %T", resp)
			}
			if fz.AppliedIndex() != idx {
				t.Fatalf("applied index %d, want %d", fz.AppliedIndex(), idx)
			}
			txn, _ := fz.ReadTxn()
			checkInvariants(t, txn)
		}
	})
}

func replicationSamples(arn string, env crypto.Envelope) map[fsm.CommandType]any {
	replicaARN := strings.Replace(arn, testRegion, "eu-west-1", 1)
	return map[fsm.CommandType]any{
		fsm.CmdSetReplication: &fsm.SetReplication{ARN: arn, Add: []fsm.Replica{{Region: "eu-west-1", KmsKeyID: "alias/r", Force: true}},
			Remove: []string{"us-east-2"}, Date: t0 + 5},
		fsm.CmdApplyReplicated: &fsm.ApplyReplicated{Source: testRegion, Next: 99, Date: t0 + 6, Drops: []string{replicaARN + "x"},
			Secrets: []fsm.ReplicatedSecret{{ARN: replicaARN, PrimaryARN: arn, Name: "MyTestDatabaseSecret", Description: "d",
				KmsKeyID: "alias/r", KeyID: "k", Tags: []fsm.Tag{{Key: "k", Value: "v"}}, TagsEverSet: true, CreatedDate: t0, LastChangedDate: t0 + 1,
				DeletedDate: t0 + 2, DeletionDate: t0 + 3, Type: "t", ResourcePolicy: "{}", SourceIndex: 98, Force: true,
				Epoch: 3, Regions: []fsm.Replica{{Region: testRegion, KmsKeyID: "alias/p"}, {Region: "eu-west-1"}},
				Versions: []fsm.ReplicatedVersion{
					{VersionID: "v1", Stages: []string{"AWSCURRENT"}, CreatedDate: t0, Binary: true, PrimaryARN: arn, Value: &env, Digest: []byte{1}},
					{VersionID: "v2", Stages: []string{"AWSPENDING"}, CreatedDate: t0, PrimaryARN: arn, Placeholder: true},
					{VersionID: "v3", CreatedDate: t0, PrimaryARN: arn, Value: &env, Digest: []byte{2},
						Conflict: &fsm.Conflict{Region: testRegion, Epoch: 2, Date: t0 + 4}}}}}},
		fsm.CmdAckReplication: &fsm.AckReplication{Region: "eu-west-1", Index: 98, AsOf: t0 + 6, Error: "unreachable", Date: t0 + 7,
			Outcomes: []fsm.ReplOutcome{{ARN: arn, Status: fsm.ReplFailed, Message: "m"},
				{ARN: arn, Status: fsm.ReplFenced, Message: "f", Epoch: 4, Primary: "eu-west-1"}}},
		fsm.CmdPromoteReplica:  &fsm.PromoteReplica{ARN: replicaARN, Date: t0 + 8},
		fsm.CmdPromoteRegion:   &fsm.PromoteRegion{From: "us-east-2", Date: t0 + 9},
		fsm.CmdDemoteRegion:    &fsm.DemoteRegion{Date: t0 + 10},
		fsm.CmdDismissConflict: &fsm.DismissConflict{ARN: replicaARN, VersionID: "v3", Date: t0 + 11},
		fsm.CmdRotateSecret: &fsm.RotateSecret{ARN: arn, Config: &fsm.RotationConfig{Rotator: "arn:aws:lambda:us-east-1:000000000000:function:pg",
			Rules: true, Expression: "rate(4 hours)", Duration: "2h", External: []fsm.Tag{{Key: "k", Value: "v"}}},
			Start: true, Token: "tok-1", NextStart: t0 + 60, NextDate: t0 + 120, Date: t0 + 12},
		fsm.CmdCancelRotation:   &fsm.CancelRotation{ARN: arn, Date: t0 + 13},
		fsm.CmdRotationProgress: &fsm.RotationProgress{ARN: arn, Token: "tok-1", Step: "setSecret", Error: "refused", RetryAt: t0 + 99, Date: t0 + 14},
		fsm.CmdPutRotator: &fsm.PutRotator{Rotator: fsm.Rotator{ARN: "arn:aws:lambda:us-east-1:000000000000:function:pg", Name: "pg",
			Type: "postgres", Config: map[string]string{"strategy": "single-user"}}, Date: t0 + 15},
		fsm.CmdDeleteRotator: &fsm.DeleteRotator{ARN: "arn:aws:lambda:us-east-1:000000000000:function:pg"},
	}
}
