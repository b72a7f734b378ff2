package cluster

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
)

// A restore asked of a follower reaches the leader, replaces the state on
// every node, never moves an applied index back, and restarts the leader
// work (a new session, never overlapping the old one). A state its check
// refuses changes nothing.
func TestCluster_RestoreSnapshot(t *testing.T) {
	var mu sync.Mutex
	starts := map[string]int{}
	running := map[string]int{}
	overlap := false
	c := newTestCluster(t, 3, func(cfg *Config) {
		id := cfg.NodeID
		cfg.CheckSnapshot = func(state []byte) error {
			if _, err := fsm.InspectSnapshot(bytes.NewReader(state)); err != nil {
				return apierr.Newf(apierr.InvalidParameter, "damaged: %v", err)
			}
			return nil
		}
		cfg.OnLeader = func(ctx context.Context) {
			mu.Lock()
			starts[id]++
			running[id]++
			overlap = overlap || running[id] > 1
			mu.Unlock()
			<-ctx.Done()
			mu.Lock()
			running[id]--
			mu.Unlock()
		}
	})
	c.waitLeader(10 * time.Second)
	f := c.follower()
	ctx := ctxTest(t)
	create := func(name string) {
		t.Helper()
		cmd := &fsm.CreateSecret{ARN: "arn:aws:secretsmanager:us-east-1:000000000000:secret:" + name + "-abcdef", Name: name, Date: 1}
		if _, _, err := f.Apply(ctx, encode(t, fsm.CmdCreateSecret, cmd)); err != nil {
			t.Fatal(err)
		}
	}
	create("before")
	var state bytes.Buffer
	if _, err := f.ReadIndex(ctx); err != nil { // as the save handler does
		t.Fatal(err)
	}
	if _, err := f.SaveSnapshot(&state); err != nil {
		t.Fatal(err)
	}
	create("after")

	if _, err := f.RestoreSnapshot(ctx, state.Bytes()[:state.Len()/2]); func() bool { e, ok := apierr.As(err); return !ok || e.Code != apierr.InvalidParameter }() {
		t.Fatalf("a truncated state: %v", err)
	}
	total := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, s := range starts {
			n += s
		}
		return n
	}
	before := total()
	applied := map[string]uint64{}
	for _, n := range c.nodes {
		applied[n.ID()] = n.fsm.AppliedIndex()
	}
	index, err := f.RestoreSnapshot(ctx, state.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes {
		if _, err := n.ReadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		txn, at := n.fsm.ReadTxn()
		if fsm.SecretByName(txn, "before") == nil || fsm.SecretByName(txn, "after") != nil {
			t.Fatalf("%s does not serve the restored state: before %v, after %v, index %d, restore %d, asked of %s", n.ID(), fsm.SecretByName(txn, "before") != nil, fsm.SecretByName(txn, "after") != nil, at, index, f.ID())
		}
		if at < index || at < applied[n.ID()] {
			t.Fatalf("%s: applied index %d, want at least %d (the restore) and %d (before it)", n.ID(), at, index, applied[n.ID()])
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		restarted := total() > before
		mu.Lock()
		o := overlap
		mu.Unlock()
		if o {
			t.Fatal("leader work of two sessions ran at once")
		}
		if restarted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the leader work did not restart after the restore")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The region writes on after a restore.
	create("later")
	if _, err := f.RestoreSnapshot(ctx, nil); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("an empty state: %v", err)
	}
}
