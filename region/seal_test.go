package region_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/cluster"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/region"
)

// startSealed starts a local region without a root key.
func startSealed(t *testing.T) *region.Region {
	t.Helper()
	cfg := localConfig()
	cfg.RootKey = nil
	r, err := region.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown() })
	return r
}

func wantCode(t *testing.T, err error, code, fragment string) {
	t.Helper()
	if !apierr.Is(err, code) || !strings.Contains(err.Error(), fragment) {
		t.Fatalf("got %v, want %s containing %q", err, code, fragment)
	}
}

// A node started without a root key waits for an operator: sealed, not
// initialized, and it says what to do. Init splits a new root key into
// shares, unseals the node that ran it and hands out the root key pair.
func TestSeal_InitUnsealsAndHandsOutSharesOnce(t *testing.T) {
	r := startSealed(t)
	_, err := r.Keyring()
	var ue *cluster.UnavailableError
	if !asUnavailable(err, &ue) || !strings.Contains(ue.Reason, "node is sealed: the region is not initialized") {
		t.Fatalf("before init: %v", err)
	}
	if st := r.SealStatus(); !st.Sealed || st.Initialized {
		t.Fatalf("status before init: %+v", st)
	}
	out, err := r.Init(context.Background(), 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Shares) != 5 || out.Threshold != 3 || out.Credentials == nil || out.Credentials.AccessKeyID != testCreds.AccessKeyID {
		t.Fatalf("init result: %+v", out)
	}
	st := r.SealStatus()
	if st.Sealed || !st.Initialized || st.Threshold != 3 || st.Shares != 5 || st.InitID != out.InitID {
		t.Fatalf("status after init: %+v", st)
	}
	if _, secret, ok := r.AccessKey(context.Background(), testCreds.AccessKeyID); !ok || secret != testCreds.SecretAccessKey {
		t.Fatal("the root access key does not open after init")
	}
	_, err = r.Init(context.Background(), 5, 3)
	wantCode(t, err, apierr.InvalidRequest, "already initialized")
}

func asUnavailable(err error, out **cluster.UnavailableError) bool {
	ue, ok := err.(*cluster.UnavailableError)
	*out = ue
	return ok
}

func TestSeal_InitRefusesBadSplitsAndNodesWithARootKey(t *testing.T) {
	r := startSealed(t)
	for _, c := range [][2]int{{0, 0}, {3, 4}, {256, 2}, {3, 1}, {2, 0}} {
		_, err := r.Init(context.Background(), c[0], c[1])
		wantCode(t, err, apierr.InvalidParameter, "")
	}
	if st := r.SealStatus(); st.Initialized {
		t.Fatal("a refused init initialized the region")
	}
	withKey, err := region.Start(localConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer withKey.Shutdown()
	_, err = withKey.Init(context.Background(), 5, 3)
	wantCode(t, err, apierr.InvalidRequest, "started with the region's root key")
}

// A second node of the same region (here: a region restarted on the same
// state) stays sealed until the threshold of shares is given; 2 of a
// 5/3 split do not unseal it, 3 do. Wrong, foreign, duplicate and
// malformed shares are refused and change nothing.
func TestSeal_UnsealWithThresholdShares(t *testing.T) {
	r := startSealed(t)
	out, err := r.Init(context.Background(), 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	other := startSealed(t)
	foreign, err := other.Init(context.Background(), 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	node := restartSealed(t, r)

	if _, err := node.Unseal(out.Shares[0]); err != nil {
		t.Fatal(err)
	}
	st, err := node.Unseal(out.Shares[3])
	if err != nil || !st.Sealed || st.Progress != 2 {
		t.Fatalf("after 2 shares: %+v, %v", st, err)
	}
	if !node.Sealed() {
		t.Fatal("2 of 3 shares unsealed the node")
	}
	_, err = node.Unseal(out.Shares[0])
	wantCode(t, err, apierr.InvalidParameter, "already given")
	_, err = node.Unseal(foreign.Shares[1])
	wantCode(t, err, apierr.InvalidParameter, "from another initialization")
	_, err = node.Unseal("not a share")
	wantCode(t, err, apierr.InvalidParameter, "not an unseal share")
	mistyped := []byte(out.Shares[1])
	mistyped[10] ^= 1
	if mistyped[10] == '+' || mistyped[10] == '/' {
		mistyped[10] = 'A'
	}
	_, err = node.Unseal(string(mistyped))
	wantCode(t, err, apierr.InvalidParameter, "")
	if st := node.SealStatus(); !st.Sealed || st.Progress != 2 {
		t.Fatalf("a refused share changed the progress: %+v", st)
	}
	st, err = node.Unseal(out.Shares[4])
	if err != nil || st.Sealed {
		t.Fatalf("after 3 shares: %+v, %v", st, err)
	}
	if _, secret, ok := node.AccessKey(context.Background(), testCreds.AccessKeyID); !ok || secret != testCreds.SecretAccessKey {
		t.Fatal("the root access key does not open after unseal")
	}
	_, err = node.Unseal(out.Shares[2])
	wantCode(t, err, apierr.InvalidRequest, "already unsealed")
}

// restartSealed is a second region object over a copy of r's state, with
// no root key: a node of the same region that restarted.
func restartSealed(t *testing.T, r *region.Region) *region.Region {
	t.Helper()
	cfg := localConfig()
	cfg.RootKey = nil
	n, err := region.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	copyState(t, r, n)
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown() })
	return n
}

// Rekey makes a new root key: the old shares stop opening the region,
// the new ones do, and the access keys (re-sealed under the keyring) keep
// working, including one sealed under the root key by an earlier version.
func TestSeal_RekeyReplacesTheRootKey(t *testing.T) {
	r := startSealed(t)
	old, err := r.Init(context.Background(), 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.Rekey(context.Background(), 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Shares) != 5 || out.InitID == old.InitID || out.Credentials != nil {
		t.Fatalf("rekey result: %+v", out)
	}
	node := restartSealed(t, r)
	_, err = node.Unseal(old.Shares[0])
	wantCode(t, err, apierr.InvalidParameter, "from another initialization or an earlier rekey")
	for _, s := range out.Shares[:3] {
		if _, err := node.Unseal(s); err != nil {
			t.Fatal(err)
		}
	}
	if node.Sealed() {
		t.Fatal("the new shares did not unseal")
	}
	if _, secret, ok := node.AccessKey(context.Background(), testCreds.AccessKeyID); !ok || secret != testCreds.SecretAccessKey {
		t.Fatal("the root access key does not open after rekey")
	}
	// 1 of 1: the root key itself, which unseals in one call.
	whole, err := r.Rekey(context.Background(), 1, 1)
	if err != nil || whole.RootKey == "" || len(whole.Shares) != 0 {
		t.Fatalf("1-of-1 rekey: %+v, %v", whole, err)
	}
	node = restartSealed(t, r)
	_, err = node.Unseal(out.Shares[0])
	wantCode(t, err, apierr.InvalidParameter, "not split into shares")
	_, err = node.Unseal(strings.TrimSpace(string(crypto.EncodeRootKey(crypto.RandomKey()))))
	wantCode(t, err, apierr.InvalidParameter, "not the region's root key")
	if st, err := node.Unseal(whole.RootKey); err != nil || st.Sealed {
		t.Fatalf("unseal with the root key: %+v, %v", st, err)
	}
}

// copyState restores from's state into to (not started yet), as a
// snapshot install would.
func copyState(t *testing.T, from, to *region.Region) {
	t.Helper()
	snap, err := from.FSM().Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if err := to.FSM().Restore(io.NopCloser(&sink.Buffer)); err != nil {
		t.Fatal(err)
	}
}

type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "mem" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }
