package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// `coffer operator raft …` against three real server processes:
// list-peers shows three voters and the leader, transfer-leader moves the
// leadership to the server named, remove-peer of a killed server leaves
// two voters that still commit, and bad input is refused with the
// server's reason.
func TestBinary_OperatorRaftCommands(t *testing.T) {
	c, base := startCluster3(t)
	all := []int{0, 1, 2}
	leader := c.waitAgreedLeader(all, 60*time.Second, "three nodes to agree on a leader")
	raft := func(i int, args ...string) (string, error) {
		cmd := exec.Command(cofferBinary(t), append(append([]string{"operator", "raft"}, args...),
			"--endpoint", "https://"+c.api[i], "--ca-file", filepath.Join(base, "coffer-ca.pem"), "--region", binRegion)...)
		cmd.Env = childEnv("AWS_ACCESS_KEY_ID="+binCreds.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+binCreds.SecretAccessKey)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	type peer struct {
		ID    string `json:"id"`
		State string `json:"state"`
		Voter bool   `json:"voter"`
	}
	peers := func(i int) []peer {
		t.Helper()
		out, err := raft(i, "list-peers", "--format", "json")
		if err != nil {
			t.Fatalf("list-peers: %v\n%s", err, out)
		}
		var ps []peer
		if err := json.Unmarshal([]byte(out), &ps); err != nil {
			t.Fatalf("list-peers json: %v\n%s", err, out)
		}
		return ps
	}
	ps := peers((leader + 1) % 3)
	if len(ps) != 3 {
		t.Fatalf("list-peers: %+v", ps)
	}
	for _, p := range ps {
		if !p.Voter || (p.State == "leader") != (p.ID == c.ids[leader]) {
			t.Fatalf("list-peers: %+v (leader %s)", ps, c.ids[leader])
		}
	}
	if out, err := raft(leader, "list-peers"); err != nil || !strings.Contains(out, "NODE") || !strings.Contains(out, c.ids[leader]) {
		t.Fatalf("list-peers table: %v\n%s", err, out)
	}

	// transfer-leader, asked of a follower, to the other follower.
	asker, target := (leader+1)%3, (leader+2)%3
	out, err := raft(asker, "transfer-leader", c.ids[target])
	if err != nil || !strings.Contains(out, "the leader is "+c.ids[target]) {
		t.Fatalf("transfer-leader: %v\n%s", err, out)
	}
	if got := c.waitAgreedLeader(all, 30*time.Second, "the new leader"); got != target {
		t.Fatalf("leader is %s, want %s", c.ids[got], c.ids[target])
	}

	// Bad input: a clear error, nothing changed.
	for _, bad := range [][]string{{"transfer-leader", "n9"}, {"remove-peer", "n9"}} {
		if out, err := raft(asker, bad...); err == nil || !strings.Contains(out, `no server "n9"`) {
			t.Fatalf("%v: %v\n%s", bad, err, out)
		}
	}

	// snapshot save on a follower, then inspect: the file checks out,
	// holds what was written, and no value in the clear.
	for i := range all {
		c.put(i, fmt.Sprintf("snap-%d", i), "SNAPSHOT-MARKER-value", 30*time.Second)
	}
	// The metrics show the forwarding and the read barriers behind those
	// writes and reads, and the size of the state.
	c.readAll([]int{asker}, 30*time.Second)
	for node, wants := range map[int][]string{
		asker:  {`coffer_cluster_forward_count{op="apply",region="` + binRegion + `"}`, `coffer_cluster_forward_count{op="read_index",region="` + binRegion + `"}`, `coffer_cluster_read_index_count{region="` + binRegion + `"}`},
		target: {`coffer_cluster_read_index_round_count{region="` + binRegion + `"}`, `coffer_cluster_read_index_round_reads_count{region="` + binRegion + `"}`},
	} {
		m := scrapeMetrics(t, c.api[node])
		for _, want := range wants {
			if m[want] < 1 {
				t.Errorf("%s: %s is %v, want at least 1", c.ids[node], want, m[want])
			}
		}
		if got := m[`coffer_state_secrets{region="`+binRegion+`"}`]; got != float64(len(c.want)) {
			t.Errorf("%s: coffer_state_secrets is %v, want %d", c.ids[node], got, len(c.want))
		}
		if got := m[`coffer_state_versions{region="`+binRegion+`"}`]; got < float64(len(c.want)) {
			t.Errorf("%s: coffer_state_versions is %v, want at least %d", c.ids[node], got, len(c.want))
		}
	}
	snap := filepath.Join(base, "backup.snap")
	cmd := exec.Command(cofferBinary(t), "operator", "snapshot", "save", snap, "--endpoint", "https://"+c.api[asker],
		"--ca-file", filepath.Join(base, "coffer-ca.pem"), "--region", binRegion)
	cmd.Env = childEnv("AWS_ACCESS_KEY_ID="+binCreds.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+binCreds.SecretAccessKey)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "SHA-256") || !strings.Contains(string(out), c.ids[asker]) {
		t.Fatalf("snapshot save: %v\n%s", err, out)
	}
	cmd = exec.Command(cofferBinary(t), "operator", "snapshot", "inspect", snap, "--format", "json")
	inspectOut, err := cmd.CombinedOutput()
	var inspected struct {
		Header struct{ Region, Node string }
		State  struct {
			Records map[string]int
		}
	}
	if err != nil || json.Unmarshal(inspectOut, &inspected) != nil || inspected.Header.Region != binRegion ||
		inspected.State.Records["secrets"] != len(c.want) {
		t.Fatalf("snapshot inspect (want %d secrets): %v\n%s", len(c.want), err, inspectOut)
	}
	if raw, _ := os.ReadFile(snap); bytes.Contains(raw, []byte("SNAPSHOT-MARKER")) || bytes.Contains(raw, []byte(binCreds.SecretAccessKey)) {
		t.Fatal("the snapshot file holds a value or the access key's secret in the clear")
	}
	raw, _ := os.ReadFile(snap)
	raw[len(raw)-1] ^= 1
	os.WriteFile(snap+".bad", raw, 0o600)
	if out, err := exec.Command(cofferBinary(t), "operator", "snapshot", "inspect", snap+".bad").CombinedOutput(); err == nil || !strings.Contains(string(out), "checksum does not match") {
		t.Fatalf("inspect of a damaged file: %v\n%s", err, out)
	}

	// Kill a follower for good and remove it: two voters that commit.
	victim := asker
	c.nodes[victim].kill(t)
	rest := []int{target, 3 - target - victim}
	if out, err := raft(rest[1], "remove-peer", c.ids[victim]); err != nil || !strings.Contains(out, "Removed peer "+c.ids[victim]) {
		t.Fatalf("remove-peer: %v\n%s", err, out)
	}
	if ps := peers(rest[0]); len(ps) != 2 {
		t.Fatalf("after remove-peer: %+v", ps)
	}
	for _, i := range rest {
		c.put(i, fmt.Sprintf("after-remove-%d", i), "two-voters-commit", 30*time.Second)
	}
	c.readAll(rest, 30*time.Second)
}

// scrapeMetrics reads a node's /v1/metrics and returns every sample's
// value by series, as written.
func scrapeMetrics(t *testing.T, api string) map[string]float64 {
	t.Helper()
	resp, err := healthClient.Get("https://" + api + "/v1/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		series, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			out[series] = v
		}
	}
	return out
}
