package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/acl"
	"github.com/cofferhq/coffer/server/servertest"
)

func voters(c *servertest.Cluster, i int) []string {
	var ids []string
	for _, p := range c.Nodes[i].Region.Node().Status().Voters {
		if p.Suffrage == "Voter" {
			ids = append(ids, p.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// A node started with --join becomes a voter; a node that leaves
// gracefully is removed from the Raft configuration; a leader that leaves
// hands leadership over first.
func TestCluster_JoinBecomesVoterLeaveIsRemoved(t *testing.T) {
	c := servertest.New(t, 3)
	ctx := ctxT(t)
	fourth := c.Join()
	c.Eventually(30*time.Second, "n4 to become a voter", func() bool {
		return slices.Equal(voters(c, c.Leader()), []string{"n1", "n2", "n3", "n4"})
	})
	if _, err := c.Client(fourth).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("via-n4"), SecretString: aws.String("x")}); err != nil {
		t.Fatalf("write through the joined node: %v", err)
	}

	follower := c.Followers()[0]
	gone := c.Nodes[follower].ID
	c.Stop(follower)
	c.Eventually(30*time.Second, gone+" to be removed", func() bool {
		return !slices.Contains(voters(c, c.Leader()), gone)
	})

	old := c.Leader()
	oldID := c.Nodes[old].ID
	c.Stop(old)
	next := c.Leader()
	if next == old {
		t.Fatal("the stopped leader still leads")
	}
	c.Eventually(30*time.Second, "the old leader to be removed", func() bool {
		return !slices.Contains(voters(c, c.Leader()), oldID)
	})
	if got := voters(c, c.Leader()); len(got) != 2 {
		t.Fatalf("voters after two graceful exits: %v", got)
	}
	// Two voters left, both up: the region still serves.
	for _, i := range c.Running() {
		if _, err := c.Client(i).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("via-n4")}); err != nil {
			t.Fatalf("read on %s: %v", c.Nodes[i].ID, err)
		}
	}
}

// /v1/cluster/status answers the root identity with the Raft view and a
// state digest that agrees across nodes at the same index.
func TestCluster_StatusEndpoint(t *testing.T) {
	c := servertest.New(t, 3)
	ctx := ctxT(t)
	if _, err := c.Client(0).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("s"), SecretString: aws.String("x")}); err != nil {
		t.Fatal(err)
	}
	type status struct {
		NodeID       string `json:"node_id"`
		State        string `json:"state"`
		LeaderID     string `json:"leader_id"`
		Term         uint64 `json:"term"`
		CommitIndex  uint64 `json:"commit_index"`
		AppliedIndex uint64 `json:"applied_index"`
		Voters       []struct {
			ID string `json:"id"`
		} `json:"voters"`
		Digest      string `json:"state_digest"`
		DigestIndex uint64 `json:"state_digest_index"`
	}
	get := func(i int, secret string) (*http.Response, status) {
		req, _ := http.NewRequest(http.MethodGet, c.Nodes[i].Endpoint+"/v1/cluster/status", nil)
		acl.Sign(req, nil, servertest.Credentials.AccessKeyID, secret, servertest.Region, "coffer", time.Now())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st status
		json.NewDecoder(resp.Body).Decode(&st)
		return resp, st
	}
	leaderIndex := c.Nodes[c.Leader()].Region.FSM().AppliedIndex()
	c.Eventually(10*time.Second, "all nodes applied", func() bool {
		for _, n := range c.Nodes {
			if n.Region.FSM().AppliedIndex() < leaderIndex {
				return false
			}
		}
		return true
	})
	digests := map[uint64]string{}
	for i, n := range c.Nodes {
		resp, st := get(i, servertest.Credentials.SecretAccessKey)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", n.ID, resp.StatusCode)
		}
		if st.NodeID != n.ID || st.LeaderID == "" || st.Term == 0 || st.AppliedIndex == 0 || len(st.Voters) != 3 || st.Digest == "" {
			t.Fatalf("%s: incomplete status %+v", n.ID, st)
		}
		if d, ok := digests[st.DigestIndex]; ok && d != st.Digest {
			t.Fatalf("digest at index %d differs between nodes: %s vs %s", st.DigestIndex, d, st.Digest)
		}
		digests[st.DigestIndex] = st.Digest
	}
	if resp, _ := get(0, "wrong-secret-wrong-secret-wrong-secret00"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("wrong signature: status %d, want 400", resp.StatusCode)
	}
	// The API signing name is not accepted for the operator endpoint.
	req, _ := http.NewRequest(http.MethodGet, c.Nodes[0].Endpoint+"/v1/cluster/status", nil)
	acl.Sign(req, nil, servertest.Credentials.AccessKeyID, servertest.Credentials.SecretAccessKey, servertest.Region, "secretsmanager", time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("secretsmanager-scoped signature on the operator endpoint: status %d", resp.StatusCode)
	}
}

func TestHealth(t *testing.T) {
	c := servertest.New(t, 1)
	resp, err := http.Get(c.Nodes[0].Endpoint + "/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw map[string]any
	json.NewDecoder(resp.Body).Decode(&raw)
	if resp.StatusCode != http.StatusOK || raw["state"] != "leader" || raw["node_id"] != "n1" || raw["region"] != "us-east-1" || raw["leader_id"] != "n1" {
		t.Fatalf("health: %d %v", resp.StatusCode, raw)
	}
	c.Kill(0)
}

// A node configured with another account than the one its region was
// bootstrapped with stays sealed instead of serving every secret under new
// ARNs.
func TestRegion_AccountMismatchSeals(t *testing.T) {
	c := servertest.New(t, 1)
	if c.Nodes[0].Region.Sealed() {
		t.Fatal("fresh region sealed")
	}
	c.Kill(0)
	c.Nodes[0].AccountID = "123456789012"
	c.Restart(0)
	// The region record, not just any entry: the configuration entry
	// (index 1) is applied before it.
	c.Eventually(10*time.Second, "the state to be replayed", func() bool {
		_, bootstrapped := c.Nodes[0].Region.Account()
		return bootstrapped
	})
	_, err := c.Nodes[0].Region.Keyring()
	if err == nil || !strings.Contains(err.Error(), "bootstrapped with account id 000000000000") {
		t.Fatalf("keyring with another account: %v", err)
	}
}

// A machine is lost and replaced: the node leaves, and a fresh node with a
// new id, an empty data dir, the old cluster address and the same
// --bootstrap-expect as its peers starts. It must join the running region
// (receiving its state), never bootstrap a second configuration of its own
// (whose first log entry would share index and term with the region's
// while holding another configuration), and the old id must be gone.
func TestCluster_ReplacedNodeJoinsWithoutBootstrapping(t *testing.T) {
	c := servertest.New(t, 3)
	ctx := ctxT(t)
	for i := range 20 {
		if _, err := c.Client(c.Leader()).CreateSecret(ctx, &secretsmanager.CreateSecretInput{
			Name: aws.String(fmt.Sprintf("before-%d", i)), SecretString: aws.String("v")}); err != nil {
			t.Fatal(err)
		}
	}
	gone := c.Followers()[0]
	goneID := c.Nodes[gone].ID
	c.Stop(gone)
	c.Eventually(30*time.Second, goneID+" to be removed", func() bool {
		return !slices.Contains(voters(c, c.Leader()), goneID)
	})
	fresh := c.Replace(gone, 3)
	freshID := c.Nodes[fresh].ID
	c.Eventually(30*time.Second, freshID+" to become a voter", func() bool {
		v := voters(c, c.Leader())
		return len(v) == 3 && slices.Contains(v, freshID) && !slices.Contains(v, goneID)
	})
	if c.Nodes[fresh].Region.Node().BootstrappedHere() {
		t.Fatalf("%s bootstrapped a configuration of its own", freshID)
	}
	for i := range 20 {
		if _, err := c.Client(fresh).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
			SecretId: aws.String(fmt.Sprintf("before-%d", i))}); err != nil {
			t.Fatalf("read on the replacement: %v", err)
		}
	}
	if _, err := c.Client(fresh).CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String("after"), SecretString: aws.String("v")}); err != nil {
		t.Fatalf("write through the replacement: %v", err)
	}
}

// A node dies without leaving and is replaced at the same address under a
// new id: the leader removes the dead id when the new one asks to join,
// so one process is never counted as two voters.
func TestCluster_ReplacementAtSameAddressRemovesDeadID(t *testing.T) {
	c := servertest.New(t, 3)
	ctx := ctxT(t)
	gone := c.Followers()[0]
	goneID := c.Nodes[gone].ID
	c.Kill(gone)
	fresh := c.Replace(gone, 3)
	freshID := c.Nodes[fresh].ID
	c.Eventually(30*time.Second, freshID+" to replace "+goneID, func() bool {
		v := voters(c, c.Leader())
		return len(v) == 3 && slices.Contains(v, freshID) && !slices.Contains(v, goneID)
	})
	if c.Nodes[fresh].Region.Node().BootstrappedHere() {
		t.Fatalf("%s bootstrapped a configuration of its own", freshID)
	}
	// Stop one of the original two: the remaining original and the
	// replacement are a majority of three only if the dead id is gone.
	for _, i := range c.Followers() {
		if i != fresh {
			c.Kill(i)
			break
		}
	}
	if _, err := c.Client(fresh).CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String("after"), SecretString: aws.String("v")}); err != nil {
		t.Fatalf("write with the original leader and the replacement: %v", err)
	}
}
