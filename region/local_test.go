package region_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/cluster"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/region"
)

var testCreds = region.Credentials{AccessKeyID: "AKIALOCALLOCALLOCAL1", SecretAccessKey: "local/test/secret/key/0123456789abcdefghi"}

func localConfig() region.Config {
	cc := cluster.DefaultConfig()
	cc.NodeID, cc.Region = "n1", "us-east-1"
	creds := testCreds
	return region.Config{Cluster: cc, RootKey: crypto.RandomKey(), Bootstrap: &creds, Local: true}
}

// eventually polls cond for up to 10 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Registered leader work runs after the region has bootstrapped, each work
// on its own goroutine with the leadership context; the leader work as a
// whole returns only once every work has returned.
func TestLeaderWork_RunsAfterBootstrapUntilLeadershipEnds(t *testing.T) {
	r, err := region.New(localConfig())
	if err != nil {
		t.Fatal(err)
	}
	var running, returned atomic.Int32
	var sawBootstrap atomic.Bool
	release := make(chan struct{})
	for _, name := range []string{"a", "b"} {
		r.RegisterLeaderWork(name, func(ctx context.Context) {
			_, bootstrapped := r.Account()
			sawBootstrap.Store(bootstrapped)
			running.Add(1)
			<-ctx.Done()
			if name == "b" {
				<-release // a slow work holds the shutdown back
			}
			returned.Add(1)
		})
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both works running", func() bool { return running.Load() == 2 })
	if !sawBootstrap.Load() {
		t.Fatal("leader work started before the region bootstrapped")
	}
	if r.Sealed() {
		t.Fatal("the region is sealed after bootstrapping")
	}
	done := make(chan struct{})
	go func() {
		r.Shutdown()
		close(done)
	}()
	eventually(t, "work a returned", func() bool { return returned.Load() == 1 })
	select {
	case <-done:
		t.Fatal("Shutdown returned while a leader work was still running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-done
	if returned.Load() != 2 {
		t.Fatalf("%d works returned", returned.Load())
	}
}

func TestRegisterLeaderWork_AfterStartPanics(t *testing.T) {
	r, err := region.Start(localConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Shutdown()
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	r.RegisterLeaderWork("late", func(context.Context) {})
}

// The local consensus applies on the caller's goroutine with increasing
// indexes: a write is visible to the next read, and the index answers
// X-Coffer-Index as Raft's does.
func TestLocal_ApplyAndRead(t *testing.T) {
	r, err := region.Start(localConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Shutdown()
	eventually(t, "bootstrap", func() bool { return !r.Sealed() })
	if id, ok := r.Account(); !ok || id != region.DefaultAccountID {
		t.Fatalf("Account() = %q %v", id, ok)
	}
	if _, secret, ok := r.AccessKey(context.Background(), testCreds.AccessKeyID); !ok || secret != testCreds.SecretAccessKey {
		t.Fatal("the bootstrap access key is not found")
	}
	kr, err := r.Keyring()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	arn := r.NewARN("db")
	nv, err := region.Seal(kr, kr.KEKID, arn, "v1-0123456789abcdef0123456789abcdef", []byte("hunter2"), false)
	if err != nil {
		t.Fatal(err)
	}
	res, i1, err := r.Apply(ctx, fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arn, Name: "db", Date: r.Now().UnixMilli(), Version: &nv})
	if err != nil || res.ARN != arn {
		t.Fatalf("create: %v %v", res, err)
	}
	_, i2, err := r.Apply(ctx, fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: r.NewARN("db"), Name: "db", Date: r.Now().UnixMilli()})
	if !apierr.Is(err, apierr.ResourceExists) || i2 != i1+1 {
		t.Fatalf("second create: index %d after %d, %v", i2, i1, err)
	}
	txn, index, err := r.Read(ctx, false)
	s := r.Resolve(txn, "db")
	if err != nil || index != i2 || s == nil {
		t.Fatalf("read at %d (want %d): %v", index, i2, err)
	}
	plain, err := r.OpenValue(kr, s, s.Staged(fsm.StageCurrent))
	if err != nil || string(plain) != "hunter2" {
		t.Fatalf("value %q %v", plain, err)
	}
	_, _, err = r.WriteSecret(ctx, "nope", func(*fsm.Secret) (fsm.CommandType, any, error) {
		t.Fatal("build called for a secret that does not exist")
		return 0, nil, nil
	})
	if !apierr.Is(err, apierr.ResourceNotFound) {
		t.Fatalf("write to nothing: %v", err)
	}
	if st := r.Status(); st.State != "leader" || st.LeaderID != "n1" || st.AppliedIndex != i2 {
		t.Fatalf("status %+v", st)
	}
}

// The purge removes, through the region's consensus, exactly the secrets
// whose recovery window ended by the time it is given.
func TestPurgeExpired_Local(t *testing.T) {
	r, err := region.Start(localConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Shutdown()
	eventually(t, "bootstrap", func() bool { return !r.Sealed() })
	ctx := context.Background()
	now := r.Now()
	for i, name := range []string{"soon", "later"} {
		arn := r.NewARN(name)
		if _, _, err := r.Apply(ctx, fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arn, Name: name, Date: now.UnixMilli()}); err != nil {
			t.Fatal(err)
		}
		window := time.Duration(7+i*10) * 24 * time.Hour
		if _, _, err := r.Apply(ctx, fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arn, Date: now.UnixMilli(),
			DeletionDate: now.Add(window).UnixMilli()}); err != nil {
			t.Fatal(err)
		}
	}
	purged, err := r.PurgeExpired(ctx, now.Add(8*24*time.Hour))
	if err != nil || len(purged) != 1 {
		t.Fatalf("purged %v, %v; want the secret whose window ended", purged, err)
	}
	txn, _, err := r.Read(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if r.Resolve(txn, "soon") != nil || r.Resolve(txn, "later") == nil {
		t.Fatal("the wrong secret was purged")
	}
}

// The leader compacts the tombstones of removed secrets once they are
// older than the retention, through Raft; younger ones stay.
func TestCompactTombstones_AfterRetention(t *testing.T) {
	cfg := localConfig()
	cfg.TombstoneRetention = time.Hour
	r, err := region.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown() })
	ctx := context.Background()
	eventually(t, "bootstrap", func() bool { _, ok := r.Account(); return ok })
	now := r.Now()
	arn := r.NewARN("gone")
	if _, _, err := r.Apply(ctx, fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arn, Name: "gone", Date: now.UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Apply(ctx, fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arn, Force: true, Date: now.UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	tombstone := func() *fsm.Tombstone {
		txn, _ := r.FSM().ReadTxn()
		return fsm.TombstoneByARN(txn, arn)
	}
	if tombstone() == nil {
		t.Fatal("a forced delete left no tombstone")
	}
	if n, err := r.CompactTombstones(ctx, now.Add(30*time.Minute)); err != nil || n != 0 || tombstone() == nil {
		t.Fatalf("inside the retention: compacted %d, %v", n, err)
	}
	if n, err := r.CompactTombstones(ctx, now.Add(61*time.Minute)); err != nil || n != 1 || tombstone() != nil {
		t.Fatalf("after the retention: compacted %d, %v", n, err)
	}
	txn, _ := r.FSM().ReadTxn()
	if _, err := fsm.ChangesAfter(txn, 0, 10); err != fsm.ErrCompacted {
		t.Fatalf("a cursor behind the compaction: %v, want ErrCompacted", err)
	}
}
