package region_test

import (
	"testing"
	"time"

	"github.com/cofferhq/coffer/cluster"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/region"
)

// A caller may zero its root key once Start returned (coffer server
// does): the region keeps its own copy, so the keyring is sealed under the
// real key, not under zeros.
func TestStart_KeepsItsOwnRootKey(t *testing.T) {
	key := crypto.RandomKey()
	keep := append([]byte(nil), key...)
	cc := cluster.DefaultConfig()
	cc.NodeID, cc.Region = "n1", "us-east-1"
	cc.ClusterAddr, cc.GossipAddr, cc.GossipLocal = "127.0.0.1:0", "127.0.0.1:0", true
	creds := region.Credentials{AccessKeyID: "AKIAREGIONTESTREGION", SecretAccessKey: "region/test/secret/key/0123456789abcdefgh"}
	r, err := region.Start(region.Config{Cluster: cc, RootKey: key, Bootstrap: &creds})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Shutdown()
	crypto.Zero(key)
	if err := r.Node().Bootstrap(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !r.Node().IsLeader() || r.Sealed() {
		if time.Now().After(deadline) {
			t.Fatal("the region did not start serving")
		}
		time.Sleep(10 * time.Millisecond)
	}
	txn, _ := r.FSM().ReadTxn()
	rec := fsm.RegionRecord(txn)
	if _, err := crypto.OpenKeyring(keep, rec.SealedKeyring, rec.Name, rec.LegacyKEKID()); err != nil {
		t.Fatalf("the keyring does not open with the root key: %v", err)
	}
	if _, err := crypto.OpenKeyring(make([]byte, crypto.KeySize), rec.SealedKeyring, rec.Name, rec.LegacyKEKID()); err == nil {
		t.Fatal("the keyring opens with an all-zero key: the region used the caller's zeroed slice")
	}
}
